//! Deadlock freedom by element-count balance.

use super::*;

/// Deadlock freedom of the schedule: every object FIFO must carry exactly as many elements as its
/// consumers acquire. Cores acquire a fixed number of elements (their step loops, times the
/// reduction loop for tensors read along the reduction dim); the shim DMAs of the runtime sequence
/// must move exactly that many, through each memory-tile link. A mismatch would leave a core or a
/// DMA waiting forever on the NPU, so it is reported here instead.
pub fn check_balance(kernel: &Kernel, design: &Design) -> Result<(), CompileError> {
    use crate::schedule::SequenceOp;
    // Element counts are checked products: an overflow is a located error, never a wrap.
    let overflow = |what: &str, span: &Span| limit(format!("size of {what} overflows 64-bit arithmetic; use fewer, larger tiles"), span, vec![]);
    fn product(counts: impl IntoIterator<Item = u64>) -> Option<u64> {
        counts.into_iter().try_fold(1u64, |acc, n| acc.checked_mul(n))
    }
    let reduce_span = crate::schedule::reduction_stmt(kernel).map_or(&kernel.span, |s| &kernel.stmts[s].span);
    let steps = product(design.step_loops.iter().map(|l| l.count)).ok_or_else(|| overflow("the step loops (tiles per core)", &kernel.span))?;
    let reduce = product(design.reduce_loops.iter().map(|l| l.count)).ok_or_else(|| overflow("the reduction loops", reduce_span))?;
    // Elements the cores acquire from FIFO `f`.
    let per_core = |f: usize| -> Result<u64, CompileError> {
        if design.in_reduction_loop(kernel, f) {
            steps
                .checked_mul(reduce)
                .ok_or_else(|| overflow("the step loops times the reduction loops", reduce_span))
        } else {
            Ok(steps)
        }
    };
    // Elements moved by the runtime sequence per shim-side FIFO.
    let mut moved = vec![0u64; design.fifos.len()];
    for op in &design.sequence {
        if let SequenceOp::Dma(d) = op {
            let fifo = &design.fifos[d.fifo];
            let span = &kernel.tensors[fifo.tensor].span;
            let n = product(d.sizes.iter().copied()).ok_or_else(|| overflow(&format!("a transfer of {}", fifo.name), span))?;
            let elem = fifo.elements();
            if elem == 0 || !n.is_multiple_of(elem) {
                return Err(deadlock(
                    kernel,
                    d.fifo,
                    design,
                    format!("a transfer of {n} elements is not a whole number of {elem}-element FIFO elements"),
                ));
            }
            moved[d.fifo] = moved[d.fifo]
                .checked_add(n / elem)
                .ok_or_else(|| overflow(&format!("the transfers of {}", fifo.name), span))?;
        }
    }
    for link in &design.links {
        // Split/forward: one input element per consumer acquisition of each output.
        // Join: one output element per producer release of each input.
        let (shim_side, core_side): (Vec<usize>, Vec<usize>) = if link.inputs.iter().all(|&f| design.fifos[f].level == FifoLevel::HostToMem) {
            (link.inputs.clone(), link.outputs.clone())
        } else {
            (link.outputs.clone(), link.inputs.clone())
        };
        for &c in &core_side {
            let f = &design.fifos[c];
            let expected = per_core(c)?;
            for &s in &shim_side {
                if moved[s] != expected {
                    return Err(deadlock(
                        kernel,
                        s,
                        design,
                        format!(
                            "the runtime sequence moves {} elements through {} but the cores behind {} use {}",
                            moved[s], design.fifos[s].name, f.name, expected
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn deadlock(kernel: &Kernel, fifo: usize, design: &Design, why: String) -> CompileError {
    let span = &kernel.tensors[design.fifos[fifo].tensor].span;
    CompileError::Schedule(Diagnostic::new(format!("the schedule would deadlock: {why}"), Some(span)).note("this is a compiler bug: please report the kernel"))
}
