//! The `route` pass: the object FIFOs that carry every host tensor between the shim, the memory
//! tiles and the cores, and the memory-tile links that split, broadcast and join them. Each input
//! is routed by what it depends on (per core through a memory-tile split, per row or per column
//! as a broadcast, or one broadcast to all cores); outputs join per column on the memory tile.

use super::{
    access_patterns, element_view, fifo_elements, host_dims, join, limit_error, schedule_error, Core, Design, FifoLevel, Link, ObjectFifo, Placement, Routing,
};
use crate::device::{DeviceModel, TileCoord};
use crate::diag::CompileError;
use crate::dsl::ast::Role;
use crate::ir::{DimId, Kernel, TensorId};
use petgraph::graph::DiGraph;
use std::collections::BTreeMap;

/// Routes every host tensor of `kernel` for `placement`; the design's runtime sequence is left
/// empty for the `sequence` pass.
pub(crate) fn route(kernel: &Kernel, device: &DeviceModel, placement: Placement) -> Result<Design, CompileError> {
    let Placement {
        rows_used,
        cols_used,
        rows_dim,
        cols_dim,
        cores_mode,
        step_loops,
        reduce_loops,
    } = placement;
    let outputs: Vec<TensorId> = kernel.tensor_ids().filter(|(_, t)| t.role == Role::Out).map(|(i, _)| i).collect();
    let inputs: Vec<TensorId> = kernel.tensor_ids().filter(|(_, t)| t.role == Role::In).map(|(i, _)| i).collect();
    let depth = kernel.depth;
    let mut fifos: Vec<ObjectFifo> = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    let mut cores: Vec<Core> = Vec::new();
    for c in 0..cols_used as u32 {
        for r in 0..rows_used as u32 {
            cores.push(Core {
                tile: device.compute_tile(c, r),
                row_index: r,
                col_index: c,
                fifos: BTreeMap::new(),
            });
        }
    }
    let core_at = |c: u32, r: u32| -> usize { (c as u64 * rows_used + r as u64) as usize };
    let shim = |c: u32| TileCoord::new(c, device.shim_row);
    let mem = |c: u32| TileCoord::new(c, device.memory_row);

    let depends = |t: TensorId, d: Option<DimId>| d.map(|d| host_dims(kernel, t).contains(&d)).unwrap_or(false);
    let mut routing = BTreeMap::new();
    let mut input_shapes: BTreeMap<TensorId, (Vec<u64>, u64)> = BTreeMap::new();
    for &t in &inputs {
        let tensor = &kernel.tensors[t];
        let view = element_view(kernel, t);
        for p in access_patterns(kernel, t) {
            for (axis, a) in p.iter().enumerate() {
                // A quotient or remainder is computed on the core from the global index.
                if view.by_tensor_axis && view.axes[axis].dim.is_none() && a.is_affine() {
                    if let Some(d) = a.dims().find(|&d| kernel.dims[d].is_split()) {
                        return Err(schedule_error(
                            format!(
                                "{} is accessed with several index patterns, so its axis {} is sent whole; dim {} used there must not be split",
                                tensor.name, axis, kernel.dims[d].name
                            ),
                            Some(&tensor.span),
                        ));
                    }
                }
            }
        }
        let elem_shape: Vec<u64> = view.shape();
        let elems = fifo_elements(kernel, t, &elem_shape, rows_used, depth)?;
        let by_row = depends(t, rows_dim) && rows_used > 1;
        let by_col = depends(t, cols_dim) && cols_used > 1;
        let route = if cores_mode {
            if depends(t, rows_dim) && rows_used * cols_used > 1 {
                Routing::PerCore
            } else {
                Routing::AllCores
            }
        } else {
            match (by_row, by_col) {
                (true, true) => Routing::PerCore,
                // One broadcast per row needs a shim column per row; with more rows than columns
                // each column gets its own copy, split over its cores.
                (true, false) if rows_used <= cols_used => Routing::PerRow,
                (true, false) => Routing::PerCore,
                (false, true) => Routing::PerColumn,
                (false, false) => Routing::AllCores,
            }
        };
        routing.insert(t, route);
        input_shapes.insert(t, (elem_shape, elems));
    }

    // Inputs that would need more input channels than a compute tile has travel joined: one
    // memory-tile FIFO whose element holds a tile of each (see `join`).
    let joins = join::plan(kernel, device, &inputs, &mut routing, &input_shapes, rows_used, &reduce_loops);
    for group in &joins {
        let route = routing[&group.parts[0].tensor];
        for (suffix, c, members) in broadcast_groups(route, rows_used as u32, cols_used as u32, cores.len(), &core_at) {
            let mut l2s = Vec::new();
            let mut src_offsets = Vec::new();
            for part in &group.parts {
                let tensor = &kernel.tensors[part.tensor];
                let (shape, _) = &input_shapes[&part.tensor];
                src_offsets.push(part.element_offset);
                l2s.push(fifos.len());
                fifos.push(ObjectFifo {
                    name: format!("{}_L2{suffix}", tensor.name),
                    producer: shim(c),
                    consumers: vec![mem(c)],
                    depth,
                    dtype: tensor.dtype,
                    shape: shape.clone(),
                    tensor: part.tensor,
                    joined: vec![],
                    level: FifoLevel::HostToMem,
                });
            }
            let f = fifos.len();
            let names: Vec<&str> = group.parts.iter().map(|p| kernel.tensors[p.tensor].name.as_str()).collect();
            fifos.push(ObjectFifo {
                name: format!("{}{suffix}", names.join("_")),
                producer: mem(c),
                consumers: members.iter().map(|&m| cores[m].tile).collect(),
                depth,
                dtype: kernel.tensors[group.parts[0].tensor].dtype,
                shape: group.shape.clone(),
                tensor: group.parts[0].tensor,
                joined: group.parts.clone(),
                level: FifoLevel::MemToCore,
            });
            for m in members {
                for part in &group.parts {
                    cores[m].fifos.insert(part.tensor, f);
                }
            }
            links.push(Link {
                inputs: l2s,
                outputs: vec![f],
                src_offsets,
                dst_offsets: vec![],
            });
        }
    }

    for &t in &inputs {
        if joins.iter().any(|g| g.parts.iter().any(|p| p.tensor == t)) {
            continue;
        }
        let tensor = &kernel.tensors[t];
        let route = routing[&t];
        let (elem_shape, elems) = input_shapes[&t].clone();
        let mk = |name: String, producer, consumers: Vec<TileCoord>, shape: Vec<u64>, level| ObjectFifo {
            name,
            producer,
            consumers,
            depth,
            dtype: tensor.dtype,
            shape,
            tensor: t,
            joined: vec![],
            level,
        };
        match route {
            Routing::PerCore => {
                for c in 0..cols_used as u32 {
                    let l2 = fifos.len();
                    fifos.push(mk(
                        format!("{}_L2_c{}", tensor.name, c),
                        shim(c),
                        vec![mem(c)],
                        vec![elems * rows_used],
                        FifoLevel::HostToMem,
                    ));
                    let mut outs = Vec::new();
                    let mut offs = Vec::new();
                    for r in 0..rows_used as u32 {
                        let f = fifos.len();
                        let core = core_at(c, r);
                        fifos.push(mk(
                            format!("{}_c{}r{}", tensor.name, c, r),
                            mem(c),
                            vec![cores[core].tile],
                            elem_shape.clone(),
                            FifoLevel::MemToCore,
                        ));
                        cores[core].fifos.insert(t, f);
                        outs.push(f);
                        offs.push(r as u64 * elems);
                    }
                    let dst = if outs.len() > 1 { offs } else { vec![] };
                    links.push(Link {
                        inputs: vec![l2],
                        outputs: outs,
                        src_offsets: vec![],
                        dst_offsets: dst,
                    });
                }
            }
            Routing::PerRow | Routing::PerColumn | Routing::AllCores => {
                for (suffix, c, members) in broadcast_groups(route, rows_used as u32, cols_used as u32, cores.len(), &core_at) {
                    let l2 = fifos.len();
                    fifos.push(mk(
                        format!("{}_L2{suffix}", tensor.name),
                        shim(c),
                        vec![mem(c)],
                        elem_shape.clone(),
                        FifoLevel::HostToMem,
                    ));
                    let f = fifos.len();
                    let consumers: Vec<TileCoord> = members.iter().map(|&m| cores[m].tile).collect();
                    fifos.push(mk(
                        format!("{}{suffix}", tensor.name),
                        mem(c),
                        consumers,
                        elem_shape.clone(),
                        FifoLevel::MemToCore,
                    ));
                    for m in members {
                        cores[m].fifos.insert(t, f);
                    }
                    links.push(Link {
                        inputs: vec![l2],
                        outputs: vec![f],
                        src_offsets: vec![],
                        dst_offsets: vec![],
                    });
                }
            }
        }
    }
    for &t in &outputs {
        let tensor = &kernel.tensors[t];
        let all_spread_used = (rows_used == 1 || depends(t, rows_dim)) && (cols_used == 1 || depends(t, cols_dim));
        if !all_spread_used {
            return Err(schedule_error(
                format!("output {} must depend on every spread dim", tensor.name),
                Some(&tensor.span),
            ));
        }
        routing.insert(t, Routing::PerCore);
        let view = element_view(kernel, t);
        let elem_shape: Vec<u64> = view.shape();
        let elems = fifo_elements(kernel, t, &elem_shape, rows_used, depth)?;
        for c in 0..cols_used as u32 {
            let mut ins = Vec::new();
            let mut offs = Vec::new();
            for r in 0..rows_used as u32 {
                let core = core_at(c, r);
                let f = fifos.len();
                fifos.push(ObjectFifo {
                    name: format!("{}_c{}r{}", tensor.name, c, r),
                    producer: cores[core].tile,
                    consumers: vec![mem(c)],
                    depth,
                    dtype: tensor.dtype,
                    shape: elem_shape.clone(),
                    tensor: t,
                    joined: vec![],
                    level: FifoLevel::CoreToMem,
                });
                cores[core].fifos.insert(t, f);
                ins.push(f);
                offs.push(r as u64 * elems);
            }
            let l2 = fifos.len();
            fifos.push(ObjectFifo {
                name: format!("{}_L2_c{}", tensor.name, c),
                producer: mem(c),
                consumers: vec![shim(c)],
                depth,
                dtype: tensor.dtype,
                shape: vec![elems * rows_used],
                tensor: t,
                joined: vec![],
                level: FifoLevel::MemToHost,
            });
            let src = if ins.len() > 1 { offs } else { vec![] };
            links.push(Link {
                inputs: ins,
                outputs: vec![l2],
                src_offsets: src,
                dst_offsets: vec![],
            });
        }
    }

    spread_shim_channels(device, &mut fifos);

    // The design graph.
    let mut graph = DiGraph::new();
    let mut tile_nodes = BTreeMap::new();
    for f in &fifos {
        for t in std::iter::once(f.producer).chain(f.consumers.iter().copied()) {
            tile_nodes.entry(t).or_insert_with(|| graph.add_node(t));
        }
    }
    for (i, f) in fifos.iter().enumerate() {
        for c in &f.consumers {
            graph.add_edge(tile_nodes[&f.producer], tile_nodes[c], i);
        }
    }

    let args: Vec<TensorId> = inputs.iter().chain(outputs.iter()).copied().collect();
    if args.len() > device.max_sequence_args {
        return Err(limit_error(
            format!(
                "runtime sequence buffer arguments: {} needed, limit {} per runtime sequence",
                args.len(),
                device.max_sequence_args
            ),
            Some(&kernel.tensors[args[device.max_sequence_args]].span),
        ));
    }

    let design = Design {
        device: device.clone(),
        rows_used: rows_used as u32,
        cols_used: cols_used as u32,
        step_loops,
        reduce_loops,
        fifos,
        links,
        cores,
        routing,
        args,
        sequence: Vec::new(),
        graph,
        tile_nodes,
    };
    Ok(design)
}

/// The broadcast FIFOs of a routing: (name suffix, shim/memory column, member cores) each.
fn broadcast_groups(route: Routing, rows: u32, cols: u32, cores: usize, core_at: &dyn Fn(u32, u32) -> usize) -> Vec<(String, u32, Vec<usize>)> {
    match route {
        Routing::PerRow => (0..rows)
            .map(|r| (format!("_r{r}"), r % cols, (0..cols).map(|c| core_at(c, r)).collect()))
            .collect(),
        Routing::PerColumn => (0..cols).map(|c| (format!("_c{c}"), c, (0..rows).map(|r| core_at(c, r)).collect())).collect(),
        _ => vec![(String::new(), 0, (0..cores).collect())],
    }
}

/// A shim tile has two DMA channels each way. When the FIFOs a column's memory tile needs from
/// (or to) the host take more than its own shim's channels, the extra ones use the nearest shim
/// column with a channel free: the switch network carries the stream across.
fn spread_shim_channels(device: &DeviceModel, fifos: &mut [ObjectFifo]) {
    let lim = device.limits(crate::device::TileKind::Shim);
    let columns = device.columns as usize;
    for inbound in [false, true] {
        let limit = if inbound { lim.dma_in } else { lim.dma_out };
        let shim_col = |f: &ObjectFifo| -> Option<usize> {
            match f.level {
                FifoLevel::HostToMem if !inbound => Some(f.producer.col as usize),
                FifoLevel::MemToHost if inbound => Some(f.consumers[0].col as usize),
                _ => None,
            }
        };
        let mut load = vec![0usize; columns];
        for f in fifos.iter() {
            if let Some(c) = shim_col(f) {
                load[c] += 1;
            }
        }
        if load.iter().all(|&n| n <= limit) {
            continue;
        }
        // Each shim keeps its first `limit` streams; the rest move.
        let mut used: Vec<usize> = load.iter().map(|&n| n.min(limit)).collect();
        let mut kept = vec![0usize; columns];
        for f in fifos.iter_mut() {
            let Some(c) = shim_col(f) else { continue };
            if kept[c] < limit {
                kept[c] += 1;
                continue;
            }
            let nearest = (1..columns)
                .flat_map(|d| [c.checked_add(d), c.checked_sub(d)])
                .flatten()
                .find(|&k| k < columns && used[k] < limit);
            let Some(k) = nearest else { continue };
            used[k] += 1;
            let tile = TileCoord::new(k as u32, device.shim_row);
            if inbound {
                f.consumers[0] = tile;
            } else {
                f.producer = tile;
            }
        }
    }
}
