//! The front ends and the reference interpreter: every statement form parses and type-checks to
//! the expected IR; every syntax and type error names the problem at the right line:col; the Rust
//! builder gives the same IR as the text; the reference matches hand-written computations.

use aiec::diag::{CompileError, Source, Span};
use aiec::dsl::ast::{BinaryOp, CmpOp, ReduceOp, Role, UnaryOp};
use aiec::dsl::builder::{self as b, Ext};
use aiec::dsl::compile_source;
use aiec::ir::{self, Affine, Convert, DimId, Expr, ScalarType, TensorId};
use aiec::reference::{run_reference, ReferenceError};
use aiec_runtime::DType;
use half::bf16;
use ndarray::{ArrayD, IxDyn};

/// `kernel k { ... }` with one item per line, each indented by two spaces: item `i` (0-based) is
/// on line `i + 2` and starts at column 3.
fn affine(terms: Vec<(i64, usize)>, constant: i64) -> Affine {
    Affine {
        terms: terms.into_iter().map(|(c, d)| (c, DimId(d))).collect(),
        constant,
        divmods: vec![],
    }
}

fn kernel_text(items: &[&str]) -> String {
    let body: Vec<String> = items.iter().map(|l| format!("  {l}")).collect();
    format!("kernel k {{\n{}\n}}\n", body.join("\n"))
}

/// `t.tile:LINE:COL` of the first occurrence of `needle` in item `item`.
fn loc(items: &[&str], item: usize, needle: &str) -> String {
    let col = items[item].find(needle).unwrap_or_else(|| panic!("{needle:?} not in {:?}", items[item])) + 3;
    format!("t.tile:{}:{}", item + 2, col)
}

fn compile(items: &[&str]) -> Result<ir::Kernel, CompileError> {
    compile_source(&Source::new("t.tile", kernel_text(items)))
}

fn ok(items: &[&str]) -> ir::Kernel {
    compile(items).unwrap_or_else(|e| panic!("expected success:\n{e}"))
}

fn err(items: &[&str]) -> CompileError {
    match compile(items) {
        Ok(_) => panic!("expected an error for:\n{}", kernel_text(items)),
        Err(e) => e,
    }
}

enum Kind {
    Parse,
    Type,
    Limit,
}

fn assert_error(e: &CompileError, kind: Kind, needles: &[&str], location: &str) {
    let msg = e.to_string();
    let kind_ok = match kind {
        Kind::Parse => matches!(e, CompileError::Parse(_)),
        Kind::Type => matches!(e, CompileError::Type(_)),
        Kind::Limit => matches!(e, CompileError::Limit(_)),
    };
    assert!(kind_ok, "wrong error kind: {e:?}");
    for n in needles {
        assert!(msg.contains(n), "message lacks {n:?}:\n{msg}");
    }
    assert!(msg.contains(&format!(" --> {location}\n")), "message lacks location {location}:\n{msg}");
}

fn check(items: &[&str], kind: Kind, needles: &[&str], item: usize, at: &str) {
    assert_error(&err(items), kind, needles, &loc(items, item, at));
}

// ---------------------------------------------------------------- statement forms (positive)

fn matmul_items() -> Vec<&'static str> {
    vec![
        "dim M = 512 tile 64",
        "dim N = 512 tile 64",
        "dim K = 512 tile 64",
        "in  A: i8[M, K]",
        "in  B: i8[K, N]",
        "out C: i32[M, N]",
        "spread M over rows, N over cols",
        "C[M, N] = sum[K](A[M, K] * B[K, N])",
    ]
}

#[test]
fn matmul_resolves_dims_tensors_and_spread() {
    let k = ok(&matmul_items());
    assert_eq!(k.name, "k");
    assert_eq!(
        k.dims.iter().map(|d| (d.name.as_str(), d.size, d.tile)).collect::<Vec<_>>(),
        [("M", 512, 64), ("N", 512, 64), ("K", 512, 64)]
    );
    assert_eq!(k.tensors[0].shape, [512, 512]);
    assert_eq!(k.tensors[0].access, Some(vec![Affine::dim(DimId(0)), Affine::dim(DimId(2))]));
    assert_eq!(k.tensors[2].access, Some(vec![Affine::dim(DimId(0)), Affine::dim(DimId(1))]));
    assert_eq!((k.spread.rows, k.spread.cols), (Some(DimId(0)), Some(DimId(1))));
    assert_eq!(k.depth, 2);
    assert!(k.depth_span.is_none());
    let s = &k.stmts[0];
    assert_eq!((s.target, s.target_dims.clone(), s.accumulate), (TensorId(2), vec![DimId(0), DimId(1)], false));
    match &s.value {
        Expr::Reduce {
            op: ReduceOp::Sum,
            dims,
            body,
            ty: ScalarType::I32,
        } => {
            assert_eq!(dims, &[DimId(2)]);
            assert!(matches!(
                body.as_ref(),
                Expr::Binary {
                    op: BinaryOp::Mul,
                    ty: ScalarType::I32,
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.span.location(), "t.tile:9:3");
}

#[test]
fn locals_max_exp_recip_division_and_comments() {
    let k = ok(&[
        "dim M = 256 tile 4   # rows",
        "dim N = 1024         // columns",
        "",
        "in  x: bf16[M, N]",
        "out y: bf16[M, N]; out z: bf16[M, N]",
        "local mx: f32[M]",
        "local s: f32[M]",
        "spread M over cores",
        "mx[M] = max[N](x[M, N])",
        "s[M] = sum[N](exp(x[M, N] - mx[M]))",
        "y[M, N] = exp(x[M, N] - mx[M]) * recip(s[M])",
        "z[M, N] = exp(x[M, N] - mx[M]) / s[M]",
    ]);
    let mx = &k.tensors[3];
    assert_eq!(
        (mx.role, mx.local_dims.clone(), mx.shape.clone(), mx.access.clone()),
        (Role::Local, vec![DimId(0)], vec![4], None)
    );
    assert_eq!(
        (k.spread.rows, k.spread.cols),
        (Some(DimId(0)), Some(DimId(0))),
        "over cores spreads one dim over rows and columns"
    );
    assert!(matches!(
        &k.stmts[0].value,
        Expr::Reduce {
            op: ReduceOp::Max,
            ty: ScalarType::F32,
            ..
        }
    ));
    assert!(matches!(&k.stmts[2].value, Expr::Binary { op: BinaryOp::Mul, rhs, .. } if matches!(rhs.as_ref(), Expr::Unary { op: UnaryOp::Recip, .. })));
    assert!(matches!(
        &k.stmts[3].value,
        Expr::Binary {
            op: BinaryOp::Div,
            ty: ScalarType::F32,
            ..
        }
    ));
}

#[test]
fn accumulate_srs_cast_and_binary_max() {
    let k = ok(&[
        "dim M = 64 tile 16",
        "dim N = 64 tile 16",
        "dim K = 64 tile 16",
        "in A: i8[M, K]",
        "in B: i8[K, N]",
        "out C: i8[M, N]",
        "out H: bf16[M, N]",
        "out R: i32[M, N]",
        "local acc: i32[M, N]",
        "acc[M, N] += A[M, K] * B[K, N]",
        "C[M, N] = srs<i8>(acc[M, N], 8)",
        "H[M, N] = cast<bf16>(acc[M, N])",
        "R[M, N] = max(acc[M, N], 0)",
    ]);
    assert!(k.stmts[0].accumulate);
    match &k.stmts[0].value {
        Expr::Reduce {
            op: ReduceOp::Sum,
            dims,
            body,
            ty: ScalarType::I32,
        } => {
            assert_eq!(dims, &[DimId(2)], "`+=` sums the dims that are neither in the target nor reduced");
            assert!(matches!(
                body.as_ref(),
                Expr::Binary {
                    op: BinaryOp::Mul,
                    ty: ScalarType::I32,
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    match &k.stmts[1].value {
        Expr::Convert {
            to: DType::I8,
            kind: Convert::Srs(8),
            ty: ScalarType::I32,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    match &k.stmts[2].value {
        Expr::Convert {
            to: DType::Bf16,
            kind: Convert::Cast,
            ty: ScalarType::F32,
            arg,
        } => assert_eq!(arg.ty(), ScalarType::I32),
        other => panic!("{other:?}"),
    }
    match &k.stmts[3].value {
        Expr::Binary {
            op: BinaryOp::Max,
            rhs,
            ty: ScalarType::I32,
            ..
        } => assert_eq!(
            rhs.as_ref(),
            &Expr::Const {
                value: 0.0,
                ty: ScalarType::I32
            }
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn select_with_causal_mask_and_negative_infinity() {
    let k = ok(&[
        "dim Q = 64 tile 16",
        "dim J = 64",
        "in x: f32[Q, J]",
        "out s: f32[Q, J]",
        "spread Q over rows",
        "s[Q, J] = select(J <= Q, x[Q, J], -inf)",
    ]);
    match &k.stmts[0].value {
        Expr::Select {
            lhs,
            cmp: CmpOp::Le,
            rhs,
            otherwise,
            ty: ScalarType::F32,
            ..
        } => {
            assert_eq!((lhs, rhs), (&Affine::dim(DimId(1)), &Affine::dim(DimId(0))));
            assert_eq!(
                otherwise.as_ref(),
                &Expr::Const {
                    value: f64::NEG_INFINITY,
                    ty: ScalarType::F32
                }
            );
        }
        other => panic!("{other:?}"),
    }
    for (cmp, want) in [("<", CmpOp::Lt), (">", CmpOp::Gt), (">=", CmpOp::Ge), ("==", CmpOp::Eq), ("!=", CmpOp::Ne)] {
        let stmt = format!("s[Q, J] = select(J {cmp} Q + 1, x[Q, J], 0)");
        let k = ok(&["dim Q = 8", "dim J = 8", "in x: f32[Q, J]", "out s: f32[Q, J]", &stmt]);
        match &k.stmts[0].value {
            Expr::Select { cmp, rhs, .. } => {
                assert_eq!(*cmp, want);
                assert_eq!(rhs, &affine(vec![(1, 0)], 1));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn affine_host_indices_and_several_patterns() {
    let k = ok(&[
        "dim T = 3000 tile 5",
        "dim S = 400",
        "in audio: f32[480400]",
        "in w: f32[2, 800]",
        "out frames: f32[T, S]",
        "spread T over cores",
        "frames[T, S] = audio[160*T + S] * w[0, S] + w[1, 400 + S] - audio[S*2 - S + 160*T]",
    ]);
    let audio = &k.tensors[0];
    assert_eq!(audio.access, Some(vec![affine(vec![(160, 0), (1, 1)], 0)]));
    let w = &k.tensors[1];
    assert_eq!(w.access, Some(vec![affine(vec![], 0), Affine::dim(DimId(1))]), "the first pattern is recorded");
    let mut loads = Vec::new();
    k.stmts[0].value.walk(&mut |e| {
        if let Expr::Load { tensor, indices, .. } = e {
            loads.push((*tensor, indices.clone()));
        }
    });
    // `S*2 - S + 160*T` folds to the same pattern as `160*T + S` (terms merged, ordered by dim).
    assert_eq!(loads[3].1, loads[0].1);
    assert_eq!(loads[2].1, vec![affine(vec![], 1), affine(vec![(1, 1)], 400)]);
}

#[test]
fn quotient_and_remainder_indices() {
    let k = ok(&[
        "dim T = 64 tile 16",
        "dim S = 8",
        "in x: f32[40, 8]",
        "out y: f32[T, S]",
        "y[T, S] = x[T / 2, S % 4] + x[T / 8 + 3*(S / 2), 7 - (2*S + 1) % 8]",
    ]);
    let mut loads = Vec::new();
    k.stmts[0].value.walk(&mut |e| {
        if let Expr::Load { indices, .. } = e {
            loads.push(indices.clone());
        }
    });
    let q = |inner: Affine, op: ir::DivMod, by: i64| ir::DivModIndex { inner, op, by };
    assert_eq!(loads[0][0].divmods, vec![(1, q(Affine::dim(DimId(0)), ir::DivMod::Div, 2))]);
    assert_eq!(loads[0][1].divmods, vec![(1, q(Affine::dim(DimId(1)), ir::DivMod::Mod, 4))]);
    // `/` binds to the dim or parentheses before it; a coefficient scales the quotient.
    assert_eq!(
        loads[1][0].divmods,
        vec![
            (1, q(Affine::dim(DimId(0)), ir::DivMod::Div, 8)),
            (3, q(Affine::dim(DimId(1)), ir::DivMod::Div, 2))
        ]
    );
    assert_eq!(loads[1][1].constant, 7);
    assert_eq!(loads[1][1].divmods, vec![(-1, q(affine(vec![(2, 1)], 1), ir::DivMod::Mod, 8))]);
    // Bounds use the quotient's range: T / 2 reaches 31 (< 40), 7 - (..) % 8 stays in 0..=7.
    let items = ["dim T = 64", "in x: f32[31]", "out y: f32[T]", "y[T] = x[T / 2]"];
    check(&items, Kind::Type, &["x axis 0 reaches index 31, but its extent is 31"], 3, "T / 2");
    let items = ["dim T = 64", "in x: f32[32]", "out y: f32[T]", "y[T] = x[T / 0]"];
    check(&items, Kind::Type, &["the divisor must be at least 1"], 3, "T / 0");
    let items = ["dim T = 64", "in x: f32[32]", "out y: f32[T]", "y[T] = x[(T - 1) / 2]"];
    check(&items, Kind::Type, &["the index before `/` reaches -1, below 0"], 3, "T - 1");
    // Targets stay plain dims.
    let items = ["dim T = 64", "in x: f32[T]", "out y: f32[32]", "y[T / 2] = x[T]"];
    check(&items, Kind::Type, &["target indices must be plain dims"], 3, "T / 2");
}

#[test]
fn unsupported_targets_and_spreads_say_why_and_what_instead() {
    let items = ["dim N = 64", "in x: f32[N]", "out y: f32[128]", "y[2*N + 1] = x[N]"];
    check(
        &items,
        Kind::Type,
        &["target indices must be plain dims", "would leave elements unwritten", "select(J == 0, a, b)"],
        3,
        "2*N + 1",
    );
    let items = [
        "dim M = 64",
        "dim N = 4096 tile 256",
        "in x: f32[M, N]",
        "out y: f32[M]",
        "spread N over cores",
        "y[M] = sum[N](x[M, N])",
    ];
    check(
        &items,
        Kind::Type,
        &[
            "spread names dim N which is not a dim of the output",
            "no path to add up each other's partial results",
        ],
        4,
        "N over",
    );
}

#[test]
fn gelu_literals_and_unary_minus() {
    let k = ok(&[
        "dim M = 64 tile 8",
        "dim N = 64",
        "in x: bf16[M, N]",
        "out y: bf16[M, N]",
        "y[M, N] = 0.5 * x[M, N] * (1 + tanh(0.7978845608 * (x[M, N] + 0.044715 * x[M, N] * x[M, N] * x[M, N]))) - -x[M, N] + 1e-5 + 2.5E+2 + .5",
    ]);
    let mut consts = Vec::new();
    let mut negs = 0;
    k.stmts[0].value.walk(&mut |e| match e {
        Expr::Const { value, ty } => consts.push((*value, *ty)),
        Expr::Unary { op: UnaryOp::Neg, .. } => negs += 1,
        _ => {}
    });
    assert_eq!(negs, 1);
    let values: Vec<f64> = consts.iter().map(|c| c.0).collect();
    assert_eq!(values, [0.5, 1.0, 0.7978845608, 0.044715, 1e-5, 250.0, 0.5]);
    assert!(consts.iter().all(|c| c.1 == ScalarType::F32), "literals in a float expression are f32");
}

#[test]
fn depth_items_in_any_order_and_default_spread() {
    // Statements and declarations interleave; dims may be declared after their use.
    let k = ok(&[
        "in A: i8[M, K]",
        "in B: i8[K, N]",
        "out C: i32[M, N]",
        "C[M, N] = sum[K](A[M, K] * B[K, N])",
        "depth 3",
        "dim M = 64 tile 16",
        "dim N = 64 tile 16",
        "dim K = 64",
    ]);
    assert_eq!(k.depth, 3);
    assert_eq!(k.depth_span.as_ref().unwrap().location(), "t.tile:6:3");
    assert_eq!(
        (k.spread.rows, k.spread.cols, k.spread.span.clone()),
        (Some(DimId(0)), Some(DimId(1)), None),
        "default: first target dim over rows, second over cols"
    );
    let k = ok(&["dim M = 64 tile 16", "in x: f32[M]", "out y: f32[M]", "y[M] = abs(x[M])"]);
    assert_eq!((k.spread.rows, k.spread.cols), (Some(DimId(0)), None));
}

// ---------------------------------------------------------------- type errors (negative)

#[test]
fn unknown_names_suggest_the_closest() {
    let items = ["dim M = 8", "dim K = 8", "in A: f32[M, Kx]", "out C: f32[M]", "C[M] = A[M, 0]"];
    check(&items, Kind::Type, &["unknown dim `Kx`; did you mean `K`?"], 2, "Kx");
    let items = ["dim M = 8", "dim K = 8", "in A: f32[M, K]", "out C: f32[M]", "C[M] = Ax[M, 0]"];
    check(&items, Kind::Type, &["unknown tensor `Ax`; did you mean `A`?"], 4, "Ax");
    let items = ["dim M = 8", "in A: f32[M]", "out C: f32[M]", "C[M] = zzz[M]"];
    let e = err(&items);
    assert_error(&e, Kind::Type, &["unknown tensor `zzz`"], &loc(&items, 3, "zzz"));
    assert!(!e.to_string().contains("did you mean"), "no suggestion for a distant name: {e}");
    let items = ["dim M = 8", "in A: f32[M]", "out C: f32[M]", "C[M] = sum[A](A[M])"];
    check(&items, Kind::Type, &["A is a tensor, not a dim"], 3, "A](");
}

#[test]
fn duplicate_names() {
    let items = ["dim M = 8", "in M: f32[8]"];
    check(&items, Kind::Type, &["duplicate name M: already declared at t.tile:2:7"], 1, "M:");
    let items = ["dim M = 8", "in x: f32[M]", "out x: f32[M]"];
    check(&items, Kind::Type, &["duplicate name x"], 2, "x:");
}

#[test]
fn wrong_number_of_indices() {
    let items = ["dim M = 8", "in A: f32[M, 4]", "out C: f32[M]", "C[M] = A[M]"];
    check(&items, Kind::Type, &["tensor A has 2 indices, found 1"], 3, "A[M]");
    let items = ["dim M = 8", "in A: f32[M]", "out C: f32[M]", "C[M, M] = A[M]"];
    check(&items, Kind::Type, &["tensor C has 1 index, found 2"], 3, "C[M, M]");
}

#[test]
fn tile_must_divide_and_fit_the_dim() {
    let items = ["dim M = 512 tile 96", "in x: f32[M]", "out y: f32[M]", "y[M] = x[M]"];
    check(&items, Kind::Limit, &["tile 96 does not divide dim M = 512"], 0, "dim M");
    let items = ["dim N = 8 tile 16", "in x: f32[N]", "out y: f32[N]", "y[N] = x[N]"];
    check(
        &items,
        Kind::Limit,
        &["tile 16 does not divide dim N = 8: it is larger than the dim"],
        0,
        "dim N",
    );
}

#[test]
fn outputs_must_be_assigned_and_inputs_must_not() {
    let items = ["dim M = 8", "in x: f32[M]", "out y: f32[M]", "out z: f32[M]", "y[M] = x[M]"];
    check(&items, Kind::Type, &["output z is never assigned"], 3, "out z");
    let items = ["dim M = 8", "in x: f32[M]", "out y: f32[M]", "y[M] = x[M]", "x[M] = 1.0"];
    check(&items, Kind::Type, &["cannot assign to input tensor x"], 4, "x[M] = 1");
}

#[test]
fn target_indices_are_plain_distinct_dims_with_one_pattern() {
    let items = ["dim M = 8", "in x: f32[16]", "out y: f32[16]", "y[M + 1] = x[M]"];
    check(&items, Kind::Type, &["target indices must be plain dims"], 3, "M + 1");
    let items = ["dim M = 8", "in x: f32[M, M]", "out y: f32[M, M]", "y[M, M] = x[M, M]"];
    check(&items, Kind::Type, &["dim M appears twice in the target"], 3, "M] =");
    let items = [
        "dim M = 8",
        "dim N = 8",
        "in x: f32[M, N]",
        "out y: f32[M, N]",
        "y[M, N] = x[M, N]",
        "y[N, M] = x[M, N]",
    ];
    check(
        &items,
        Kind::Type,
        &["output y is written with two different index patterns (first at t.tile:6:3)"],
        5,
        "y[N, M]",
    );
}

#[test]
fn local_indices_must_be_its_dims() {
    let items = [
        "dim M = 8",
        "dim N = 8",
        "in x: f32[M, N]",
        "out y: f32[M, N]",
        "local t: f32[M, N]",
        "t[N, M] = x[M, N]",
        "y[M, N] = t[M, N]",
    ];
    check(&items, Kind::Type, &["local t is declared over [M, N]; index it as t[M, N]"], 5, "N, M]");
    let items = [
        "dim M = 8",
        "in x: f32[M]",
        "out y: f32[M]",
        "local t: f32[M]",
        "y[M] = t[M] + x[M]",
        "t[M] = x[M]",
    ];
    check(&items, Kind::Type, &["local t is read before any statement assigns it"], 4, "t[M]");
    let items = ["dim M = 8", "local t: f32[M, 4]"];
    check(&items, Kind::Type, &["local t is indexed by dims only; extent 4 must be a dim"], 1, "4");
}

#[test]
fn dtype_mismatches_name_the_fix() {
    let base = ["dim M = 8", "in a: i8[M]", "in f: f32[M]", "in w: i32[M]"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    let items = with(&["out y: f32[M]", "y[M] = a[M] * 2"]);
    check(
        &items,
        Kind::Type,
        &["dtype mismatch: i32 value stored into f32 tensor y", "cast<f32>(...)"],
        5,
        "a[M] * 2",
    );
    let items = with(&["out y: i32[M]", "y[M] = f[M]"]);
    check(
        &items,
        Kind::Type,
        &["dtype mismatch: f32 value stored into i32 tensor y", "cast<i32>(...)"],
        5,
        "f[M]",
    );
    let items = with(&["out y: i8[M]", "y[M] = w[M] + a[M]"]);
    check(
        &items,
        Kind::Type,
        &["dtype mismatch: i32 value stored into i8 tensor y", "srs<i8>(..., shift)", "cast<i8>(...)"],
        5,
        "w[M]",
    );
    let items = with(&["out y: i8[M]", "y[M] = srs<i16>(w[M], 4)"]);
    check(&items, Kind::Type, &["dtype mismatch", "srs<i8>(..., shift)"], 5, "srs<i16>");
    let items = with(&["out y: f32[M]", "y[M] = f[M] + a[M]"]);
    check(
        &items,
        Kind::Type,
        &["dtype mismatch: i32 value where f32 is expected", "cast<f32>(...)"],
        5,
        "a[M]",
    );
    let items = with(&["out y: i32[M]", "y[M] = w[M] * 0.5"]);
    check(&items, Kind::Type, &["dtype mismatch: literal 0.5 in an i32 expression"], 5, "0.5");
    let items = with(&["out y: f32[M]", "y[M] = exp(w[M])"]);
    check(
        &items,
        Kind::Type,
        &["dtype mismatch: exp needs a floating-point argument", "cast<f32>(...)"],
        5,
        "exp(",
    );
    let items = with(&["out y: i32[M]", "y[M] = w[M] / w[M]"]);
    check(&items, Kind::Type, &["integer division is not supported"], 5, "w[M] /");
    // Already in range: narrow loads, srs/cast to the type or narrower, max/min of those.
    ok(&with(&["out y: i8[M]", "y[M] = max(a[M], srs<i8>(w[M], 2))"]));
    ok(&with(&["out y: i16[M]", "y[M] = cast<i8>(f[M])"]));
}

#[test]
fn srs_converts_ints_to_ints_only() {
    let items = ["dim M = 8", "in w: i32[M]", "out y: f32[M]", "y[M] = srs<f32>(w[M], 2)"];
    check(&items, Kind::Type, &["srs converts to an integer type, not f32", "cast<f32>"], 3, "srs<");
    let items = ["dim M = 8", "in f: f32[M]", "out y: i8[M]", "y[M] = srs<i8>(f[M], 2)"];
    check(&items, Kind::Type, &["dtype mismatch: srs needs an i32 value, found f32"], 3, "f[M]");
}

#[test]
fn reductions_and_free_dims() {
    let items = ["dim M = 8", "dim N = 8", "in x: f32[M, N]", "out y: f32[M]", "y[M] = sum[N](x[M, 0])"];
    check(&items, Kind::Type, &["sum over dim N, which its body does not use"], 4, "N](");
    let items = ["dim M = 8", "dim N = 8", "in x: f32[M, N]", "out y: f32[M]", "y[M] = max[N, N](x[M, N])"];
    check(&items, Kind::Type, &["dim N is already reduced here"], 4, "N](");
    let items = matmul_items().into_iter().take(7).chain(["C[M, N] = A[M, K] * B[K, N]"]).collect::<Vec<_>>();
    check(
        &items,
        Kind::Type,
        &["dim K is neither in the target nor reduced; wrap in sum[K](...)"],
        7,
        "K]",
    );
    let items = [
        "dim M = 8",
        "dim N = 8",
        "in x: f32[M, N]",
        "out y: f32[M]",
        "y[M] = select(N < M, x[M, M], 0.0)",
    ];
    check(&items, Kind::Type, &["dim N is neither in the target nor reduced"], 4, "N <");
}

#[test]
fn spread_and_depth_are_checked() {
    let items = [
        "dim M = 8",
        "dim N = 8",
        "in x: f32[M, N]",
        "out y: f32[M]",
        "y[M] = sum[N](x[M, N])",
        "spread N over rows",
    ];
    check(&items, Kind::Type, &["spread names dim N which is not a dim of the output"], 5, "N over");
    let items = [
        "dim M = 8",
        "dim N = 8",
        "in x: f32[M, N]",
        "out y: f32[M, N]",
        "y[M, N] = x[M, N]",
        "spread M over rows, N over rows",
    ];
    check(&items, Kind::Type, &["two dims are spread over rows"], 5, "N over");
    let items = [
        "dim M = 8",
        "dim N = 8",
        "in x: f32[M, N]",
        "out y: f32[M, N]",
        "y[M, N] = x[M, N]",
        "spread M over cores, N over cols",
    ];
    check(&items, Kind::Type, &["cannot be combined"], 5, "N over");
    let items = ["dim M = 8", "in x: f32[M]", "out y: f32[M]", "y[M] = x[M]", "depth 5"];
    check(&items, Kind::Type, &["depth 5 is out of range", "1..=4"], 4, "depth");
    let items = ["dim M = 8", "in x: f32[M]", "out y: f32[M]", "y[M] = x[M]", "depth 0"];
    check(&items, Kind::Type, &["depth 0 is out of range"], 4, "depth");
}

#[test]
fn host_extents_and_bounds() {
    let items = ["dim M = 8", "in x: f32[16]", "out y: f32[M]", "y[M] = x[M]"];
    check(&items, Kind::Type, &["input x axis 0 has extent 16 but is indexed by dim M = 8"], 3, "x[M]");
    let items = ["dim M = 8", "in x: f32[100]", "out y: f32[M]", "y[M] = x[16*M + 3]"];
    check(&items, Kind::Type, &["x axis 0 reaches index 115, but its extent is 100"], 3, "16*M");
    let items = ["dim M = 8", "in x: f32[100]", "out y: f32[M]", "y[M] = x[M - 1]"];
    check(&items, Kind::Type, &["x axis 0 reaches index -1, below 0"], 3, "M - 1");
    // Extents named by dims resolve to the dim's size; several patterns only need to fit.
    let k = ok(&[
        "dim M = 8",
        "dim D = 4",
        "in gb: f32[2, D]",
        "in x: f32[M, D]",
        "out y: f32[M, D]",
        "y[M, D] = x[M, D] * gb[0, D] + gb[1, D]",
    ]);
    assert_eq!(k.tensors[0].shape, [2, 4]);
}

// ---------------------------------------------------------------- syntax errors

fn parse_err(text: &str) -> CompileError {
    compile_source(&Source::new("t.tile", text)).expect_err("a syntax error")
}

#[test]
fn syntax_errors_say_what_was_expected_in_words() {
    let e = parse_err("kernel k {\n  dim M = 8\n  123 = 4\n}\n");
    assert_error(
        &e,
        Kind::Parse,
        &["expected a statement, `dim`, `in`, `out`, `local`, `spread`, `depth` or `}`, found `123`"],
        "t.tile:3:3",
    );
    let rendered = e.to_string();
    assert!(rendered.contains("3 |   123 = 4\n  |   ^^^"), "caret under the token:\n{rendered}");
    let e = parse_err("kernel k {\n  dim M = 8\n  in x: f32[M]\n  out y: f32[M]\n  y[M] = x[M\n}\n");
    assert_error(&e, Kind::Parse, &["expected `]`", "found the end of the line"], "t.tile:5:13");
    let e = parse_err("kernel k {\n  in x: f64[8]\n}\n");
    assert_error(&e, Kind::Parse, &["expected a dtype (i8, i16, i32, bf16, f32), found `f64`"], "t.tile:2:9");
    let e = parse_err("kernel k {\n  dim M = 8 tile\n}\n");
    assert_error(&e, Kind::Parse, &["expected an integer, found the end of the line"], "t.tile:2:17");
    let e = parse_err("kernel k {\n  spread M over diagonals\n}\n");
    assert_error(&e, Kind::Parse, &["expected `rows`, `cols` or `cores`, found `diagonals`"], "t.tile:2:17");
    let e = parse_err("kern k {}\n");
    assert_error(&e, Kind::Parse, &["expected `kernel`, found `kern`"], "t.tile:1:1");
    let e = parse_err("kernel k {\n  dim M = 8 dim N = 4\n}\n");
    assert_error(&e, Kind::Parse, &["found `dim`"], "t.tile:2:13");
    for text in ["kernel k {\n  dim M = 8\n", "kernel k {\n  y[M] = (x[M]\n}\n"] {
        let msg = parse_err(text).to_string();
        assert!(
            !msg.contains("t_") && !msg.contains("kw_") && !msg.contains("EOI") && !msg.contains("affine"),
            "no grammar rule names: {msg}"
        );
    }
}

#[test]
fn calls_are_checked_while_parsing() {
    let e = parse_err("kernel k {\n  y[M] = foo(x[M])\n}\n");
    assert_error(&e, Kind::Parse, &["unknown function `foo`; the functions are exp, tanh"], "t.tile:2:10");
    let e = parse_err("kernel k {\n  y[M] = max(x[M])\n}\n");
    assert_error(&e, Kind::Parse, &["max(a, b) takes 2 arguments, found 1", "max[DIM](...)"], "t.tile:2:10");
    let e = parse_err("kernel k {\n  y[M] = exp(x[M], 2)\n}\n");
    assert_error(&e, Kind::Parse, &["exp takes 1 argument, found 2"], "t.tile:2:10");
    let e = parse_err("kernel k {\n  y[M] = srs<i8>(x[M], 40)\n}\n");
    assert_error(&e, Kind::Parse, &["srs shift 40 is out of range 0..=31"], "t.tile:2:24");
    let e = parse_err("kernel k {\n  dim M = 99999999999999999999999\n}\n");
    assert_error(
        &e,
        Kind::Parse,
        &["dim M = 99999999999999999999999: larger than the largest supported extent 2147483648"],
        "t.tile:2:11",
    );
}

// ---------------------------------------------------------------- sizes and nesting past the limits

#[test]
fn sizes_past_the_supported_extent_are_located_errors() {
    // Dims: past 64 bits in the parser, past the largest extent in the checker; same words.
    for size in ["2147483649", "4611686018427387904", "9223372036854775808"] {
        let dim = format!("dim D = {size}");
        let items = [dim.as_str(), "in x: f32[D]", "out y: f32[D]", "y[D] = x[D]"];
        check(
            &items,
            Kind::Limit,
            &[&format!("dim D = {size}: larger than the largest supported extent 2147483648")],
            0,
            "dim",
        );
    }
    ok(&["dim D = 2147483648 tile 2147483648", "in x: i8[D]", "out y: i8[D]", "y[D] = x[D]"]);
    let items = ["dim D = 8", "in x: f32[D, 4294967296]", "out y: f32[D]", "y[D] = x[D, 0]"];
    check(
        &items,
        Kind::Limit,
        &["extent 4294967296 of tensor x: larger than the largest supported extent"],
        1,
        "4294967296",
    );
    let items = ["dim D = 8", "in x: f32[D, 99999999999999999999]", "out y: f32[D]", "y[D] = x[D, 0]"];
    check(
        &items,
        Kind::Parse,
        &["extent 99999999999999999999 of tensor x: larger than the largest supported extent"],
        1,
        "9999",
    );
    let items = ["dim D = 8", "depth 99999999999999999999", "in x: f32[D]", "out y: f32[D]", "y[D] = x[D]"];
    check(&items, Kind::Parse, &["depth 99999999999999999999 is out of range"], 1, "9999");
    // Host tensors hold at most 2 GiB (the shim DMA's signed 32-bit offset into an argument).
    let items = [
        "dim M = 16777216 tile 64",
        "dim N = 16777216 tile 64",
        "in x: i8[M, N]",
        "out y: i8[M, N]",
        "y[M, N] = x[M, N]",
    ];
    check(
        &items,
        Kind::Limit,
        &["input x is 281474976710656 bytes (16777216 x 16777216 i8 elements), larger than the 2147483648 bytes (2 GiB)"],
        2,
        "in x",
    );
    let items = ["dim M = 1073741824", "out y: f32[M]", "y[M] = 0.0"];
    check(&items, Kind::Limit, &["output y is 4294967296 bytes", "arg_plus"], 1, "out y");
    // A local's size must at least be computable.
    let items = [
        "dim A = 2147483648",
        "dim B = 2147483648",
        "dim C = 2147483648",
        "in x: i8[A]",
        "out y: i8[A]",
        "local t: f32[A, B, C]",
        "y[A] = x[A]",
    ];
    check(
        &items,
        Kind::Limit,
        &["size of local t (2147483648 x 2147483648 x 2147483648 f32 elements) overflows 64-bit arithmetic"],
        5,
        "local",
    );
}

#[test]
fn literals_and_index_values_past_their_range_are_located_errors() {
    let base = ["dim M = 16", "in x: f32[M]", "in n: i32[M]", "out y: f32[M]", "out z: i32[M]"];
    let with = |stmts: [&'static str; 2]| -> Vec<&'static str> { base.iter().copied().chain(stmts).collect() };
    let items = with(["y[M] = x[M]", "z[M] = n[M] + 3000000000"]);
    check(
        &items,
        Kind::Type,
        &["literal 3000000000 is out of the i32 range -2147483648..=2147483647"],
        6,
        "3000000000",
    );
    let items = with(["y[M] = x[M] * 1e39", "z[M] = n[M]"]);
    check(
        &items,
        Kind::Type,
        &["literal 1e39 is out of the f32 range", "write `inf` for infinity"],
        5,
        "1e39",
    );
    let items = with(["y[M] = x[M] * 1e400", "z[M] = n[M]"]);
    check(&items, Kind::Parse, &["number 1e400 is too large"], 5, "1e400");
    ok(&with(["y[M] = x[M] * 3.4e38 + -inf", "z[M] = n[M] + 2147483647"]));
    // Index coefficients: combined with checked arithmetic; beyond an axis only on a size-1 dim.
    let items = with(["y[M] = x[4611686018427387904*M + 4611686018427387904*M]", "z[M] = n[M]"]);
    check(
        &items,
        Kind::Limit,
        &["the coefficient of dim M is larger than the largest supported extent"],
        5,
        "4611686018427387904*M +",
    );
    let items = with(["y[M] = x[99999999999999999999*M]", "z[M] = n[M]"]);
    check(
        &items,
        Kind::Parse,
        &["index value 99999999999999999999 is larger than the largest supported extent"],
        5,
        "9999",
    );
    let items = ["dim M = 16", "dim O = 1", "in x: f32[M]", "out y: f32[M]", "y[M] = sum[O](x[M + 1000*O])"];
    check(
        &items,
        Kind::Type,
        &["index coefficient 1000 of dim O is larger than x axis 0's extent 16"],
        4,
        "M + 1000",
    );
    // `select` compares index values within the supported extent.
    let items = with(["y[M] = select(9223372036854775807*M <= 3, x[M], 0.0)", "z[M] = n[M]"]);
    check(
        &items,
        Kind::Limit,
        &["beyond the largest supported extent 2147483648"],
        5,
        "9223372036854775807*M",
    );
}

#[test]
fn nesting_past_the_limit_is_a_located_error() {
    use aiec::dsl::ast::MAX_EXPR_DEPTH;
    assert_eq!(MAX_EXPR_DEPTH, 200);
    let base = |value: String| -> Vec<String> {
        ["dim M = 16", "in x: f32[M]", "out y: f32[M]"]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("y[M] = {value}")])
            .collect()
    };
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    // Parentheses: measured in the text before pest (which recurses on them) runs.
    let items = base(format!("{}x[M]{}", "(".repeat(201), ")".repeat(201)));
    let e = err(&refs(&items));
    assert_error(
        &e,
        Kind::Parse,
        &["parentheses nested more than 200 deep; the limit is 200 levels"],
        "t.tile:5:210",
    );
    // Operators: a chain of 201 terms is 201 levels; the error covers the chain from its start.
    let items = base(vec!["x[M]"; 201].join(" - "));
    let e = err(&refs(&items));
    assert_error(
        &e,
        Kind::Parse,
        &["expression nested more than 200 levels deep; the limit is 200"],
        "t.tile:5:10",
    );
    assert!(e.to_string().contains("through a `local`"), "{e}");
    ok(&refs(&base(vec!["x[M]"; 200].join(" - "))));
    // Calls, casts and unary minus count the same way.
    for (open, close) in [("exp(", ")"), ("cast<f32>(", ")"), ("-", "")] {
        let deep = base(format!("{}x[M]{}", open.repeat(200), close.repeat(200)));
        assert!(err(&refs(&deep)).to_string().contains("the limit is 200"), "{open}");
        ok(&refs(&base(format!("{}x[M]{}", open.repeat(199), close.repeat(199)))));
    }
    // The Rust builder can build deeper trees than the parser; the builder and the type checker
    // reject them at the statement.
    let mut k = b::Kernel::new("deep");
    let m = k.dim("M", 16).whole();
    let x = k.input("x", DType::F32, [m]);
    let y = k.output("y", DType::F32, [m]);
    let mut value = x.at([m]);
    for _ in 0..300 {
        value = value + x.at([m]);
    }
    k.assign(y.at([m]), value);
    let line = line!() - 1;
    let e = k.build().unwrap_err();
    assert!(matches!(e, CompileError::Limit(_)), "{e:?}");
    assert!(
        e.to_string().contains("the limit is 200") && e.to_string().contains(&format!("dsl.rs:{line}:")),
        "{e}"
    );
    let mut ast = aiec::dsl::parse::parse(&Source::new("t.tile", kernel_text(&refs(&base("x[M]".into()))))).unwrap();
    if let Some(aiec::dsl::ast::Item::Stmt(s)) = ast.items.last_mut() {
        for _ in 0..300 {
            let span = s.value.span().clone();
            s.value = aiec::dsl::ast::Expr::Unary(UnaryOp::Abs, Box::new(s.value.clone()), span);
        }
    }
    let e = aiec::dsl::typecheck::typecheck(&ast).unwrap_err();
    assert_error(&e, Kind::Limit, &["expression nested more than 200 levels deep"], "t.tile:5:10");
}

#[test]
fn oversized_sources_and_long_lines_render_briefly() {
    let items = [
        "dim M = 16".to_string(),
        "in x: f32[M]".into(),
        "out y: f32[M]".into(),
        format!("y[M] = {}", vec!["x[M]"; 200_000].join(" + ")),
    ];
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let e = err(&refs);
    let msg = e.to_string();
    assert!(
        matches!(e, CompileError::Parse(_)) && msg.contains("larger than the 1048576 bytes (1 MiB) a .tile file may have"),
        "{msg}"
    );
    // The long line is shown as a window around the column, with `...` where it is cut.
    let e = err(&[
        "dim M = 16",
        "in x: f32[M]",
        "out y: f32[M]",
        &format!("y[M] = {} + z[M]", vec!["x[M]"; 100].join(" + ")),
    ]);
    let msg = e.to_string();
    assert!(msg.contains("unknown tensor `z`"), "{msg}");
    let shown = msg.lines().find(|l| l.starts_with("5 | ")).unwrap();
    let caret = msg.lines().find(|l| l.contains('^')).unwrap();
    assert!(shown.starts_with("5 | ...") && shown.ends_with("z[M]") && shown.len() < 200, "{msg}");
    assert_eq!(caret.find('^'), shown.find("z[M]"), "the caret stays under the name:\n{msg}");
}

// ---------------------------------------------------------------- the Rust builder

/// The IR with every span replaced by one placeholder, to compare kernels from both front ends.
fn without_spans(mut k: ir::Kernel) -> ir::Kernel {
    let none = Span::new(&Source::new("", ""), 0, 0);
    k.span = none.clone();
    k.depth_span = k.depth_span.map(|_| none.clone());
    k.spread.span = k.spread.span.map(|_| none.clone());
    for d in &mut k.dims {
        d.span = none.clone();
    }
    for t in &mut k.tensors {
        t.span = none.clone();
    }
    for s in &mut k.stmts {
        s.span = none.clone();
    }
    k
}

#[test]
fn builder_matmul_equals_text() {
    let mut k = b::Kernel::new("k");
    let (m, n, kk) = (k.dim("M", 512).tile(64), k.dim("N", 512).tile(64), k.dim("K", 512).tile(64));
    let a = k.input("A", DType::I8, [m, kk]);
    let bb = k.input("B", DType::I8, [kk, n]);
    let c = k.output("C", DType::I32, [m, n]);
    k.spread_rows(m).spread_cols(n);
    k.assign(c.at([m, n]), b::sum([kk], a.at([m, kk]) * bb.at([kk, n])));
    let built = k.build().unwrap_or_else(|e| panic!("{e}"));
    let text = ok(&matmul_items());
    assert_eq!(without_spans(built.clone()), without_spans(text.clone()));
    assert_ne!(built, text, "spans differ: the builder's name the Rust source");
    assert!(built.stmts[0].span.location().contains("dsl.rs:"), "{}", built.stmts[0].span.location());
}

#[test]
fn builder_softmax_equals_text() {
    let items = [
        "dim M = 256 tile 4",
        "dim N = 1024",
        "in  x: bf16[M, N]",
        "out y: bf16[M, N]",
        "local mx: f32[M]",
        "local inv: f32[M]",
        "spread M over cores",
        "depth 1",
        "mx[M] = max[N](x[M, N])",
        "inv[M] = recip(sum[N](exp(x[M, N] - mx[M])))",
        "y[M, N] = exp(x[M, N] - mx[M]) * inv[M]",
    ];
    let mut k = b::Kernel::new("k");
    let m = k.dim("M", 256).tile(4);
    let n = k.dim("N", 1024).whole();
    let x = k.input("x", DType::Bf16, [m, n]);
    let y = k.output("y", DType::Bf16, [m, n]);
    let mx = k.local("mx", DType::F32, [m]);
    let inv = k.local("inv", DType::F32, [m]);
    k.spread_cores(m).depth(1);
    k.assign(mx.at([m]), b::maxr([n], x.at([m, n])));
    k.assign(inv.at([m]), b::recip(b::sum([n], b::exp(x.at([m, n]) - mx.at([m])))));
    k.assign(y.at([m, n]), b::exp(x.at([m, n]) - mx.at([m])) * inv.at([m]));
    let built = k.build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(without_spans(built), without_spans(ok(&items)));
}

#[test]
fn builder_affine_indices_select_casts_and_literals_equal_text() {
    let items = [
        "dim T = 8",
        "dim S = 4",
        "in audio: f32[40]",
        "in basis: bf16[2, 8]",
        "out o: bf16[T, S]",
        "out c: i8[T, S]",
        "local acc: i32[T, S]",
        "o[T, S] = select(S <= T, audio[4*T + S] * basis[1, 4 + S], -inf) + max(-audio[S], 0.5) / 2.0",
        "acc[T, S] += cast<i32>(audio[S + 2*T])",
        "c[T, S] = srs<i8>(acc[T, S], 3)",
    ];
    let mut k = b::Kernel::new("k");
    let t = k.dim("T", 8).whole();
    let s: b::DimRef = k.dim("S", 4).into();
    let audio = k.input("audio", DType::F32, [40]);
    let basis = k.input("basis", DType::Bf16, [Ext::from(2), Ext::from(8)]);
    let o = k.output("o", DType::Bf16, [t, s]);
    let c = k.output("c", DType::I8, [t, s]);
    let acc = k.local("acc", DType::I32, [t, s]);
    k.assign(
        o.at([t, s]),
        b::select(
            s.le(t),
            audio.at([t * 4 + s]) * basis.at([b::Idx::from(1), 4 + s]),
            -b::Expr::from(f64::INFINITY),
        ) + b::max2(-audio.at([s]), 0.5) / 2.0,
    );
    k.accumulate(acc.at([t, s]), b::cast(DType::I32, audio.at([s + t * 2])));
    k.assign(c.at([t, s]), b::srs(DType::I8, acc.at([t, s]), 3));
    let built = k.build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(without_spans(built), without_spans(ok(&items)));
}

#[test]
fn builder_errors_point_at_the_rust_line() {
    let mut k = b::Kernel::new("bad");
    let m = k.dim("M", 512).tile(96);
    let line = line!() - 1;
    let x = k.input("x", DType::F32, [m]);
    let y = k.output("y", DType::F32, [m]);
    k.assign(y.at([m]), x.at([m]));
    let e = k.build().unwrap_err();
    assert!(matches!(e, CompileError::Limit(_)));
    let msg = e.to_string();
    assert!(msg.contains("tile 96 does not divide dim M = 512"), "{msg}");
    assert!(msg.contains(&format!("dsl.rs:{line}:")), "{msg}");

    let mut k = b::Kernel::new("bad");
    let m = k.dim("M", 8).whole();
    let x = k.input("x", DType::F32, [m]);
    let y = k.output("y", DType::I8, [m]);
    k.assign(y.at([m]), x.at([m]) * 2.0);
    let line = line!() - 1;
    let msg = k.build().unwrap_err().to_string();
    assert!(msg.contains("dtype mismatch: f32 value stored into i8 tensor y"), "{msg}");
    assert!(msg.contains(&format!("dsl.rs:{line}:")), "{msg}");

    let mut k = b::Kernel::new("bad");
    let m = k.dim("M", 8).whole();
    let x = k.input("x", DType::F32, [m]);
    k.assign(x.at([m]) + 1.0, x.at([m]));
    let line = line!() - 1;
    let msg = k.build().unwrap_err().to_string();
    assert!(msg.contains("the target of an assignment must be a tensor access"), "{msg}");
    assert!(msg.contains(&format!("dsl.rs:{line}:")), "{msg}");

    // Handles of another kernel are rejected, not silently renamed.
    let mut other = b::Kernel::new("other");
    let q = other.dim("Q", 8).whole();
    let mut k = b::Kernel::new("bad");
    let m = k.dim("M", 8).whole();
    let x = k.input("x", DType::F32, [m]);
    let y = k.output("y", DType::F32, [m]);
    k.assign(y.at([m]), x.at([q]));
    assert!(k.build().unwrap_err().to_string().contains("of another kernel"));
}

// ---------------------------------------------------------------- the reference interpreter

fn array(shape: &[usize], values: Vec<f64>) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
}

/// Deterministic pseudo-random integers in [lo, hi] (a linear congruential sequence).
fn ints(n: usize, lo: i64, hi: i64, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (lo + ((s >> 33) as i64).rem_euclid(hi - lo + 1)) as f64
        })
        .collect()
}

#[test]
fn reference_matmul_i8_i32_matches_a_plain_matmul() {
    let (m, n, kk) = (8usize, 6usize, 16usize);
    let items = [
        "dim M = 8 tile 4",
        "dim N = 6",
        "dim K = 16 tile 8",
        "in  A: i8[M, K]",
        "in  B: i8[K, N]",
        "out C: i32[M, N]",
        "C[M, N] = sum[K](A[M, K] * B[K, N])",
    ];
    let kernel = ok(&items);
    let a = ints(m * kk, -128, 127, 1);
    let bm = ints(kk * n, -128, 127, 2);
    let out = run_reference(&kernel, &[array(&[m, kk], a.clone()), array(&[kk, n], bm.clone())]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), &[m, n]);
    let mut saw_large = false;
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..kk).map(|p| a[i * kk + p] * bm[p * n + j]).sum();
            saw_large |= want.abs() > 10000.0;
            assert_eq!(out[0][[i, j]], want, "C[{i}, {j}]");
        }
    }
    assert!(saw_large, "the test data exercises more than tiny products");
}

#[test]
fn reference_softmax_matches_a_hand_written_softmax() {
    let (m, n) = (4usize, 16usize);
    let items = [
        "dim M = 4 tile 2",
        "dim N = 16",
        "in  x: bf16[M, N]",
        "out y: bf16[M, N]",
        "local mx: f32[M]",
        "local inv: f32[M]",
        "mx[M] = max[N](x[M, N])",
        "inv[M] = recip(sum[N](exp(x[M, N] - mx[M])))",
        "y[M, N] = exp(x[M, N] - mx[M]) * inv[M]",
    ];
    let kernel = ok(&items);
    let x: Vec<f64> = ints(m * n, -300, 300, 3).into_iter().map(|v| bf16::from_f64(v / 97.0).to_f64()).collect();
    let out = run_reference(&kernel, &[array(&[m, n], x.clone())]).unwrap();
    for i in 0..m {
        let row: Vec<f32> = (0..n).map(|j| x[i * n + j] as f32).collect();
        let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0f32;
        for v in &row {
            s += (v - mx).exp();
        }
        let mut total = 0.0;
        for (j, v) in row.iter().enumerate() {
            let want = bf16::from_f32((v - mx).exp() * (1.0 / s)).to_f64();
            assert_eq!(out[0][[i, j]], want, "y[{i}, {j}]");
            total += want;
        }
        assert!((total - 1.0).abs() < 0.02, "row {i} sums to {total}");
    }
}

fn run_1d(items: &[&str], input: Vec<f64>) -> Vec<f64> {
    let kernel = ok(items);
    let n = input.len();
    run_reference(&kernel, &[array(&[n], input)]).unwrap_or_else(|e| panic!("{e}"))[0]
        .iter()
        .copied()
        .collect()
}

#[test]
fn reference_srs_rounds_half_up_and_saturates() {
    let items = ["dim N = 14", "in a: i32[N]", "out y: i8[N]", "y[N] = srs<i8>(a[N], 4)"];
    let input = vec![
        24.0, -24.0, 8.0, -8.0, 7.0, -9.0, 2039.0, 2040.0, -2056.0, -2057.0, 100000.0, -100000.0, 0.0, 23.0,
    ];
    // x/16 rounded half up: 1.5 -> 2, -1.5 -> -1, 0.5 -> 1, -0.5 -> 0, 0.4375 -> 0, -0.5625 -> -1,
    // 127.4375 -> 127, 127.5 -> 128 -> 127 (saturated), -128.5 -> -128, -128.5625 -> -129 -> -128,
    // then far out of range both ways, 0, 1.4375 -> 1.
    let want = [2.0, -1.0, 1.0, 0.0, 0.0, -1.0, 127.0, 127.0, -128.0, -128.0, 127.0, -128.0, 0.0, 1.0];
    assert_eq!(run_1d(&items, input), want);
    // Shift 0: no rounding, only saturation.
    let items = ["dim N = 4", "in a: i32[N]", "out y: i16[N]", "y[N] = srs<i16>(a[N], 0)"];
    assert_eq!(run_1d(&items, vec![40000.0, -40000.0, 32767.0, -5.0]), [32767.0, -32768.0, 32767.0, -5.0]);
    assert_eq!(aiec::reference::srs(-1, 1, DType::I8), 0, "-0.5 rounds up to 0");
    assert_eq!(aiec::reference::srs(-3, 1, DType::I8), -1, "-1.5 rounds up to -1");
}

#[test]
fn reference_casts_truncate_saturate_and_round_to_even() {
    let items = ["dim N = 6", "in f: f32[N]", "out y: i8[N]", "y[N] = cast<i8>(f[N])"];
    assert_eq!(
        run_1d(&items, vec![3.7, -3.7, 300.0, -1e9, 127.9, -0.5]),
        [3.0, -3.0, 127.0, -128.0, 127.0, 0.0]
    );
    let items = ["dim N = 3", "in w: i32[N]", "out y: i8[N]", "y[N] = cast<i8>(w[N])"];
    assert_eq!(run_1d(&items, vec![1000.0, -1000.0, -7.0]), [127.0, -128.0, -7.0]);
    // bf16 keeps 8 significant bits: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 (even: 1);
    // 1 + 3*2^-8 is a tie between 1 + 2^-7 and 1 + 2^-6 (even: 1 + 2^-6).
    let items = ["dim N = 3", "in f: f32[N]", "out y: bf16[N]", "y[N] = f[N]"];
    let t1 = 1.0 + 2f64.powi(-8);
    let t2 = 1.0 + 3.0 * 2f64.powi(-8);
    assert_eq!(
        run_1d(&items, vec![t1, t2, 1.0 + 2f64.powi(-7)]),
        [1.0, 1.0 + 2f64.powi(-6), 1.0 + 2f64.powi(-7)]
    );
}

#[test]
fn reference_integer_arithmetic_wraps_like_i32() {
    let items = ["dim K = 3", "dim O = 1", "in a: i32[K]", "out y: i32[O]", "y[O] = sum[K](a[K] * a[K])"];
    // 65536^2 = 2^32 wraps to 0 twice; 3^2 = 9.
    assert_eq!(run_1d(&items, vec![65536.0, -65536.0, 3.0]), [9.0]);
    let items = ["dim N = 2", "in a: i32[N]", "out y: i32[N]", "y[N] = a[N] + 2147483647"];
    assert_eq!(run_1d(&items, vec![1.0, -1.0]), [-2147483648.0, 2147483646.0]);
}

#[test]
fn reference_affine_select_accumulate_and_locals() {
    // frames[T, S] = audio[2*T + S]; causal mask; `+=` sums the free dim.
    let items = [
        "dim T = 3",
        "dim S = 4",
        "in audio: f32[8]",
        "out frames: f32[T, S]",
        "out masked: f32[T, S]",
        "out total: f32[T]",
        "local acc: f32[T]",
        "frames[T, S] = audio[2*T + S]",
        "masked[T, S] = select(S <= T, audio[2*T + S], -inf)",
        "acc[T] += audio[2*T + S]",
        "acc[T] += 1",
        "total[T] = acc[T]",
    ];
    let kernel = ok(&items);
    let audio: Vec<f64> = (0..8).map(|i| i as f64 * 10.0).collect();
    let out = run_reference(&kernel, &[array(&[8], audio.clone())]).unwrap();
    for t in 0..3 {
        let mut sum = 0.0;
        for s in 0..4 {
            let v = audio[2 * t + s];
            assert_eq!(out[0][[t, s]], v);
            assert_eq!(out[1][[t, s]], if s <= t { v } else { f64::NEG_INFINITY });
            sum += v;
        }
        assert_eq!(out[2][[t]], sum + 1.0, "total[{t}]");
    }
}

#[test]
fn reference_rejects_bad_inputs() {
    let kernel = ok(&["dim N = 2", "in a: i8[N]", "in b: f32[N]", "out y: f32[N]", "y[N] = cast<f32>(a[N]) + b[N]"]);
    let good = || array(&[2], vec![1.0, 2.0]);
    match run_reference(&kernel, &[good()]) {
        Err(ReferenceError::InputCount { expected: 2, got: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    match run_reference(&kernel, &[array(&[3], vec![0.0; 3]), good()]) {
        Err(e @ ReferenceError::InputShape { .. }) => assert!(e.to_string().contains("input a: shape [3] given, the kernel declares [2]"), "{e}"),
        other => panic!("{other:?}"),
    }
    match run_reference(&kernel, &[array(&[2], vec![1.0, 1.5]), good()]) {
        Err(e @ ReferenceError::InputValue { .. }) => assert!(e.to_string().contains("input a: element [1] = 1.5 is not a i8 value"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        run_reference(&kernel, &[array(&[2], vec![1.0, 200.0]), good()]),
        Err(ReferenceError::InputValue { .. })
    ));
    let out = run_reference(&kernel, &[array(&[2], vec![-3.0, 4.0]), array(&[2], vec![0.5, 0.25])]).unwrap();
    assert_eq!(out[0].iter().copied().collect::<Vec<_>>(), [-2.5, 4.25]);
}

#[test]
fn every_example_parses_typechecks_and_runs_on_the_reference() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dsl-examples");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tile"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let kernel = compile_source(&Source::new(path.display().to_string(), text)).unwrap_or_else(|e| panic!("{e}"));
        // The reference on small kernels only (mel's DFT is large for a debug-profile test).
        let elements: u64 = kernel.dims.iter().map(|d| d.size).product();
        if elements > 1 << 26 {
            continue;
        }
        let inputs: Vec<ArrayD<f64>> = kernel
            .tensors
            .iter()
            .filter(|t| t.role == Role::In)
            .map(|t| {
                let n: u64 = t.shape.iter().product();
                let shape: Vec<usize> = t.shape.iter().map(|&s| s as usize).collect();
                let v = ints(n as usize, -100, 100, 9)
                    .into_iter()
                    .map(|x| if t.dtype.is_float() { x / 64.0 } else { x })
                    .collect();
                array(&shape, v)
            })
            .collect();
        let out = run_reference(&kernel, &inputs).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(out.len(), kernel.tensors.iter().filter(|t| t.role == Role::Out).count());
    }
}

#[test]
fn ast_nodes_carry_precise_spans() {
    use aiec::dsl::ast::{Expr as A, Item};
    let text = "kernel k {\n  dim M = 8 tile 4\n  in x: bf16[M]\n  out y: bf16[M]\n  y[M] = exp(x[M] - 1.5) * -x[M]\n}\n";
    let source = Source::new("t.tile", text);
    let ast = aiec::dsl::parse::parse(&source).unwrap();
    let slice = |s: &Span| &text[s.start..s.end];
    assert_eq!(slice(&ast.name.span), "k");
    match &ast.items[0] {
        Item::Dim {
            name,
            size: 8,
            tile: Some(4),
            span,
        } => assert_eq!((slice(&name.span), slice(span)), ("M", "dim M = 8 tile 4")),
        other => panic!("{other:?}"),
    }
    match &ast.items[1] {
        Item::Tensor { dtype_span, span, .. } => assert_eq!((slice(dtype_span), slice(span)), ("bf16", "in x: bf16[M]")),
        other => panic!("{other:?}"),
    }
    let Item::Stmt(stmt) = &ast.items[3] else { panic!("{:?}", ast.items[3]) };
    assert_eq!(slice(&stmt.span), "y[M] = exp(x[M] - 1.5) * -x[M]");
    assert_eq!(slice(&stmt.target.span), "y[M]");
    assert_eq!(slice(&stmt.target.indices[0].span), "M");
    let A::Binary(BinaryOp::Mul, lhs, rhs, span) = &stmt.value else {
        panic!("{:?}", stmt.value)
    };
    assert_eq!(slice(span), "exp(x[M] - 1.5) * -x[M]");
    assert_eq!(slice(lhs.span()), "exp(x[M] - 1.5)");
    assert_eq!(slice(rhs.span()), "-x[M]");
    let A::Unary(UnaryOp::Exp, inner, _) = lhs.as_ref() else { panic!("{lhs:?}") };
    let A::Binary(BinaryOp::Sub, _, one_half, _) = inner.as_ref() else {
        panic!("{inner:?}")
    };
    assert!(matches!(one_half.as_ref(), A::Number(v, s) if *v == 1.5 && slice(s) == "1.5"));
}

#[test]
fn a_split_dim_cannot_be_both_reduced_across_tiles_and_an_output_dim() {
    let text = "kernel k {\n  dim M = 64 tile 16\n  dim N = 32\n  in x: f32[M, N]\n  out y: f32[M, N]\n  local acc: f32[N]\n  acc[N] = sum[M](x[M, N])\n  y[M, N] = acc[N]\n}\n";
    let err = match aiec::compile_source("k.tile", text, &aiec::DeviceModel::npu1()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("M is both reduced across tiles and an output dim"),
    };
    assert!(
        err.contains("dim M is split (tile 16 of 64) and reduced across tiles") && err.contains("output y"),
        "{err}"
    );
    assert!(err.contains("k.tile:5:3"), "points at the output: {err}");
}

/// Gathers: one axis indexed by an integer tensor; every misuse is a located error.
#[test]
fn gather_rules() {
    let base = [
        "dim T = 64 tile 16",
        "dim D = 8",
        "in ids: i32[T]",
        "in f: f32[T]",
        "in table: f32[10, D]",
        "out y: f32[T, D]",
    ];
    let with = |stmt: &str| -> Vec<String> { base.iter().map(|s| s.to_string()).chain([stmt.to_string()]).collect() };
    let k = ok(&with("y[T, D] = table[ids[T], D]").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(matches!(k.stmts[0].value, ir::Expr::Gather { axis: 0, .. }));
    for (stmt, needle) in [
        ("y[T, D] = table[f[T], D]", "a gather index must be an integer; f is f32"),
        ("y[ids[T], D] = table[ids[T], D]", "a target cannot be indexed by a tensor read"),
        ("y[T, D] = table[ids[T], ids[T]]", "only one axis of an access may be read from another tensor"),
        ("y[T, D] = y[ids[T], D]", "only inputs can be gathered"),
    ] {
        let items = with(stmt);
        let e = err(&items.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(e.to_string().contains(needle), "{stmt}: {e}");
        assert!(e.to_string().contains("t.tile:8:"), "{stmt}: located at the statement: {e}");
    }
    let items = with("y[T, D] = table[ids[ids[T]], D]");
    let e = err(&items.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.to_string().contains("brackets nested more than 2 deep"), "{e}");
}
