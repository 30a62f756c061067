//! The `sequence` pass: the runtime sequence of shim DMAs that feeds every input FIFO and drains
//! every output FIFO, each stream's pattern fitted to the shim buffer descriptor's dimensions and
//! chunked along the outer step loops (with a `dma_wait` per chunk) when it does not fit.

use super::*;

/// One (count, stride) access-pattern dimension, in elements.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PatDim {
    count: u64,
    stride: u64,
}

/// A stream between a host tensor and one shim-side FIFO, before chunking.
struct Stream {
    arg: usize,
    fifo: usize,
    tensor: TensorId,
    /// The tensor's tile element (computed once: it walks every statement).
    view: ElementView,
    /// Fixed core coordinates of this stream (None: enumerated by the split/join dim).
    row: Option<u32>,
    col: u32,
    /// Whether the rows of one column are enumerated inside each element (split/join).
    per_core_rows: bool,
    is_output: bool,
}

/// The runtime sequence for a routed design.
pub(crate) fn sequence(kernel: &Kernel, design: &Design) -> Result<Vec<SequenceOp>, CompileError> {
    let mut streams = Vec::new();
    for (i, f) in design.fifos.iter().enumerate() {
        let arg = design.args.iter().position(|&t| t == f.tensor).unwrap();
        let route = design.routing[&f.tensor];
        // The core row a per-row broadcast feeds: that of the cores behind its link.
        let row_of = |fifo: usize| {
            design
                .links
                .iter()
                .find(|l| l.inputs.contains(&fifo))
                .map(|l| design.fifos[l.outputs[0]].consumers[0].row - design.device.first_compute_row)
        };
        match f.level {
            FifoLevel::HostToMem => {
                let (row, per_core_rows) = match route {
                    Routing::PerCore => (None, true),
                    Routing::PerRow => (row_of(i), false),
                    Routing::PerColumn | Routing::AllCores => (Some(0), false),
                };
                // The column of the cores fed (its shim may be another column's).
                let col = match route {
                    Routing::PerRow | Routing::AllCores => 0,
                    _ => f.consumers[0].col,
                };
                streams.push(Stream {
                    arg,
                    fifo: i,
                    tensor: f.tensor,
                    view: element_view(kernel, f.tensor),
                    row,
                    col,
                    per_core_rows,
                    is_output: false,
                });
            }
            FifoLevel::MemToHost => {
                streams.push(Stream {
                    arg,
                    fifo: i,
                    tensor: f.tensor,
                    view: element_view(kernel, f.tensor),
                    row: None,
                    col: f.producer.col,
                    per_core_rows: true,
                    is_output: true,
                });
            }
            _ => {}
        }
    }

    let reduce_dims: Vec<DimId> = design.reduce_loops.iter().map(|l| l.dim).collect();
    // Outputs first so the S2MM side is ready, then inputs.
    let mut ordered: Vec<&Stream> = streams.iter().filter(|s| s.is_output).collect();
    ordered.extend(streams.iter().filter(|s| !s.is_output));
    // Try chunking along 0, 1, ... outer step loops until every stream fits a shim BD.
    for chunk_depth in 0..=design.step_loops.len() {
        let mut ops = Vec::new();
        let chunk_loops = &design.step_loops[..chunk_depth];
        let chunk_count = chunk_loops.iter().try_fold(1u64, |acc, l| acc.checked_mul(l.count));
        let Some(chunk_count) = chunk_count.filter(|&n| n <= 1024) else {
            break;
        };
        let mut fits = true;
        let mut first_failure = None;
        'chunks: for chunk in 0..chunk_count {
            // Decompose the chunk number into outer step indices.
            let mut rem = chunk;
            let mut outer_steps = vec![0u64; chunk_depth];
            for i in (0..chunk_depth).rev() {
                outer_steps[i] = rem % chunk_loops[i].count;
                rem /= chunk_loops[i].count;
            }
            let mut ids: BTreeMap<u32, u32> = BTreeMap::new();
            let mut waits = Vec::new();
            for s in &ordered {
                let view = &s.view;
                // Strides and offsets are computed as signed 128-bit values (a negative index
                // coefficient gives a negative stride, held in two's complement in the view) and
                // checked back into 64 bits: an overflow is a located error, never a wrap.
                let stride_of = |d: DimId| view.stride_of(d) as i64 as i128;
                let tile_of = |d: DimId| kernel.dims[d].tile as i128;
                let too_large = || {
                    limit_error(
                        format!(
                            "size of the shim DMA pattern of tensor {} overflows 64-bit arithmetic; use fewer, larger tiles",
                            kernel.tensors[s.tensor].name
                        ),
                        Some(&kernel.tensors[s.tensor].span),
                    )
                };
                let stride64 = |v: Option<i128>| v.and_then(|v| i64::try_from(v).ok()).map(|v| v as u64).ok_or_else(too_large);
                let mut offset = view.constant as i128;
                let row = s.row.unwrap_or(0) as i128;
                for (i, lp) in design.step_loops.iter().enumerate() {
                    let step = if i < chunk_depth { outer_steps[i] as i128 * lp.step_coef as i128 } else { 0 };
                    let base_tile = lp.row_coef as i128 * row + lp.col_coef as i128 * s.col as i128 + step;
                    offset = base_tile
                        .checked_mul(tile_of(lp.dim))
                        .and_then(|v| v.checked_mul(stride_of(lp.dim)))
                        .and_then(|v| v.checked_add(offset))
                        .ok_or_else(too_large)?;
                }
                let offset = u64::try_from(offset).map_err(|_| too_large())?;
                let mut dims: Vec<PatDim> = Vec::new();
                for lp in &design.step_loops[chunk_depth..] {
                    dims.push(PatDim {
                        count: lp.count,
                        stride: stride64((lp.step_coef as i128 * tile_of(lp.dim)).checked_mul(stride_of(lp.dim)))?,
                    });
                }
                // A tile repeated per reduction tile walks the reduction loops with stride 0.
                let uses_reduce = view.dims().iter().any(|d| reduce_dims.contains(d)) || design.repeated_per_reduction(s.fifo);
                if uses_reduce {
                    for lp in &design.reduce_loops {
                        dims.push(PatDim {
                            count: lp.count,
                            stride: stride64(tile_of(lp.dim).checked_mul(stride_of(lp.dim)))?,
                        });
                    }
                }
                if s.per_core_rows {
                    let stride = design.step_loops.iter().try_fold(0i128, |acc, lp| {
                        (lp.row_coef as i128 * tile_of(lp.dim))
                            .checked_mul(stride_of(lp.dim))
                            .and_then(|v| v.checked_add(acc))
                    });
                    dims.push(PatDim {
                        count: design.rows_used as u64,
                        stride: stride64(stride)?,
                    });
                }
                for v in &view.axes {
                    dims.push(PatDim {
                        count: v.extent,
                        stride: v.stride,
                    });
                }
                let elem_bytes = kernel.tensors[s.tensor].dtype.size_bytes() as u64;
                match fit_shim_bd(&dims, elem_bytes, &design.device) {
                    Ok((sizes, strides)) => {
                        let f = &design.fifos[s.fifo];
                        let shim_col = if s.is_output { f.consumers[0].col } else { f.producer.col };
                        let id = ids.entry(shim_col).or_insert(0);
                        ops.push(SequenceOp::Dma(DmaTransfer {
                            arg: s.arg,
                            fifo: s.fifo,
                            offset,
                            sizes,
                            strides,
                            id: *id,
                            issue_token: s.is_output,
                        }));
                        *id += 1;
                        if s.is_output {
                            waits.push(s.fifo);
                        }
                    }
                    Err(why) => {
                        fits = false;
                        first_failure.get_or_insert((s.tensor, why));
                        break 'chunks;
                    }
                }
            }
            for (col, n) in &ids {
                if *n as usize > design.device.shim.bds {
                    return Err(limit_error(
                        format!(
                            "buffer descriptors on shim tile ({}, 0): {} needed at once, limit {}",
                            col, n, design.device.shim.bds
                        ),
                        Some(&kernel.span),
                    ));
                }
            }
            for w in waits {
                ops.push(SequenceOp::Wait { fifo: w });
            }
        }
        if fits {
            return Ok(ops);
        }
        if chunk_depth == design.step_loops.len() {
            let (t, why) = first_failure.unwrap();
            return Err(limit_error(
                format!(
                    "the shim DMA cannot address tensor {} in one transfer per tile: {}",
                    kernel.tensors[t].name, why
                ),
                Some(&kernel.tensors[t].span),
            ));
        }
    }
    Err(limit_error(
        "too many DMA chunks (over 1024) in the runtime sequence; use larger tiles",
        Some(&kernel.span),
    ))
}

/// Simplifies an access pattern and maps it onto a shim BD: d0..d2 with positive strides and
/// d0/d1 wraps within 10 bits (in 4-byte words), d3 the repeat/iteration dim (stride may be 0).
fn fit_shim_bd(dims: &[PatDim], elem_bytes: u64, dev: &DeviceModel) -> Result<([u64; 4], [u64; 4]), String> {
    // Drop unit dims, merge contiguous neighbours.
    let mut v: Vec<PatDim> = dims.iter().copied().filter(|d| d.count > 1).collect();
    // Strides are two's complement: a negative one (a negative index coefficient) walks back.
    if let Some(k) = v.iter().position(|d| (d.stride as i64) < 0) {
        return Err(format!(
            "dimension {} walks backwards (stride {}); the shim DMA takes non-negative strides only",
            v.len() - 1 - k,
            v[k].stride as i64
        ));
    }
    let overflow = || "the transfer's size overflows 64-bit arithmetic".to_string();
    let mut i = v.len();
    while i >= 2 {
        let (outer, inner) = (v[i - 2], v[i - 1]);
        if inner.count.checked_mul(inner.stride) == Some(outer.stride) && inner.stride != 0 {
            v[i - 2] = PatDim {
                count: outer.count.checked_mul(inner.count).ok_or_else(overflow)?,
                stride: inner.stride,
            };
            v.remove(i - 1);
        }
        i -= 1;
    }
    let bytes = |n: u64| n.checked_mul(elem_bytes).ok_or_else(overflow);
    if v.is_empty() {
        v.push(PatDim { count: 1, stride: 1 });
    }
    // A contiguous innermost run longer than the wrap limit is split into rows.
    let max_words = dev.shim_wrap_max_words;
    if let Some(last) = v.last().copied() {
        if last.stride == 1 && bytes(last.count)? / 4 > max_words {
            let words_per_elem = 4 / elem_bytes.min(4);
            let mut inner = (max_words * words_per_elem.max(1)).min(last.count);
            while inner > 1 && last.count % inner != 0 {
                inner -= 1;
            }
            let n = v.len();
            v[n - 1] = PatDim {
                count: last.count / inner,
                stride: inner,
            };
            v.push(PatDim { count: inner, stride: 1 });
        }
    }
    // A second dimension longer than the wrap limit is split in two (count = outer x inner, the
    // inner part within the limit) while the BD has a dimension to spare: a long reduction read
    // as rows of a tile, e.g. 1184 rows of 64 columns, becomes 37 blocks of 32 rows.
    if v.len() >= 2 && v.len() < 4 {
        let at = v.len() - 2;
        let d1 = v[at];
        if d1.count > max_words {
            if let Some(inner) = (2..=max_words.min(d1.count)).rev().find(|b| d1.count.is_multiple_of(*b)) {
                v[at] = PatDim {
                    count: d1.count / inner,
                    stride: d1.stride.checked_mul(inner).ok_or_else(overflow)?,
                };
                v.insert(
                    at + 1,
                    PatDim {
                        count: inner,
                        stride: d1.stride,
                    },
                );
            }
        }
    }
    if v.len() > 4 {
        return Err(format!("{} dimensions needed, the shim DMA has 4", v.len()));
    }
    // Unit dims pad from the outside, below a repeat (stride 0), which must stay outermost.
    let pad_at = usize::from(v.len() > 1 && v[0].stride == 0);
    while v.len() < 4 {
        v.insert(pad_at, PatDim { count: 1, stride: 0 });
    }
    let d0 = v[3];
    if d0.stride != 1 {
        return Err(format!("the innermost dimension has stride {}, it must be contiguous (stride 1)", d0.stride));
    }
    if !bytes(d0.count)?.is_multiple_of(4) {
        return Err(format!("the innermost run is {} bytes, not a multiple of 4", bytes(d0.count)?));
    }
    for k in 1..3 {
        if v[3 - k].count > 1 && v[3 - k].stride == 0 {
            return Err(format!("dimension {} repeats data (stride 0); only the outermost dimension may", k));
        }
        if v[3 - k].count > 1 && !bytes(v[3 - k].stride)?.is_multiple_of(4) {
            return Err(format!("stride {} of dimension {} is not a multiple of 4 bytes", v[3 - k].stride, k));
        }
    }
    if bytes(d0.count)? / 4 > max_words {
        return Err(format!("d0 wrap of {} words exceeds {}", bytes(d0.count)? / 4, max_words));
    }
    if v[2].count > max_words {
        return Err(format!("d1 wrap of {} exceeds {}", v[2].count, max_words));
    }
    if v[0].count > dev.shim_repeat_max {
        return Err(format!("d3 repeat count {} exceeds {}", v[0].count, dev.shim_repeat_max));
    }
    for d in &v {
        if bytes(d.stride)? / 4 > dev.shim_step_max_words {
            return Err(format!("stride {} exceeds the {}-word step limit", d.stride, dev.shim_step_max_words));
        }
    }
    Ok((
        [v[0].count, v[1].count, v[2].count, v[3].count],
        [v[0].stride, v[1].stride, v[2].stride, v[3].stride],
    ))
}
