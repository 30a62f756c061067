//! The arith ops of core code, typed: on scalars, or on vectors when their operands are vectors
//! (on lanes each one is checked against the target's rules first).

use super::core::CoreEmitter;
use super::mlir::{Elem, Val};
use melior::dialect::arith::{self, CmpfPredicate, CmpiPredicate};
use melior::dialect::ods;
use melior::ir::{Location, Operation, Type, Value};

/// A binary arith op on two values of one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bin {
    AddI,
    SubI,
    MulI,
    MaxSI,
    MinSI,
    AndI,
    OrI,
    ShLI,
    ShRSI,
    ShRUI,
    DivUI,
    RemUI,
    AddF,
    SubF,
    MulF,
    MaximumF,
    MinimumF,
}

impl Bin {
    fn name(self) -> &'static str {
        match self {
            Bin::AddI => "arith.addi",
            Bin::SubI => "arith.subi",
            Bin::MulI => "arith.muli",
            Bin::MaxSI => "arith.maxsi",
            Bin::MinSI => "arith.minsi",
            Bin::AndI => "arith.andi",
            Bin::OrI => "arith.ori",
            Bin::ShLI => "arith.shli",
            Bin::ShRSI => "arith.shrsi",
            Bin::ShRUI => "arith.shrui",
            Bin::DivUI => "arith.divui",
            Bin::RemUI => "arith.remui",
            Bin::AddF => "arith.addf",
            Bin::SubF => "arith.subf",
            Bin::MulF => "arith.mulf",
            Bin::MaximumF => "arith.maximumf",
            Bin::MinimumF => "arith.minimumf",
        }
    }

    fn build<'c>(self, context: &'c melior::Context, a: Value<'c, '_>, b: Value<'c, '_>, l: Location<'c>) -> Operation<'c> {
        match self {
            Bin::AddI => arith::addi(a, b, l),
            Bin::SubI => arith::subi(a, b, l),
            Bin::MulI => arith::muli(a, b, l),
            Bin::MaxSI => arith::maxsi(a, b, l),
            Bin::MinSI => arith::minsi(a, b, l),
            Bin::AndI => arith::andi(a, b, l),
            Bin::OrI => arith::ori(a, b, l),
            Bin::ShLI => arith::shli(a, b, l),
            Bin::ShRSI => arith::shrsi(a, b, l),
            Bin::ShRUI => arith::shrui(a, b, l),
            Bin::DivUI => arith::divui(a, b, l),
            Bin::RemUI => arith::remui(a, b, l),
            Bin::AddF => arith::addf(a, b, l),
            Bin::SubF => arith::subf(a, b, l),
            Bin::MulF => arith::mulf(a, b, l),
            Bin::MaximumF => ods::arith::maximumf(context, a, b, l).into(),
            Bin::MinimumF => arith::minimumf(a, b, l),
        }
    }
}

/// A conversion between element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Conv {
    ExtF,
    TruncF,
    ExtSI,
    TruncI,
    SIToFP,
    FPToSI,
    Bitcast,
    IndexCast,
}

impl Conv {
    fn name(self) -> &'static str {
        match self {
            Conv::ExtF => "arith.extf",
            Conv::TruncF => "arith.truncf",
            Conv::ExtSI => "arith.extsi",
            Conv::TruncI => "arith.trunci",
            Conv::SIToFP => "arith.sitofp",
            Conv::FPToSI => "arith.fptosi",
            Conv::Bitcast => "arith.bitcast",
            Conv::IndexCast => "arith.index_cast",
        }
    }

    fn build<'c>(self, v: Value<'c, '_>, to: Type<'c>, l: Location<'c>) -> Operation<'c> {
        match self {
            Conv::ExtF => arith::extf(v, to, l),
            Conv::TruncF => arith::truncf(v, to, l),
            Conv::ExtSI => arith::extsi(v, to, l),
            Conv::TruncI => arith::trunci(v, to, l),
            Conv::SIToFP => arith::sitofp(v, to, l),
            Conv::FPToSI => arith::fptosi(v, to, l),
            Conv::Bitcast => arith::bitcast(v, to, l),
            Conv::IndexCast => arith::index_cast(v, to, l),
        }
    }
}

impl<'c> CoreEmitter<'_, 'c> {
    pub(super) fn bin(&mut self, op: Bin, a: Val, b: Val) -> Val {
        let e = self.ir.elem_of(a);
        self.check_vector_arith(op.name(), &[a, b], e, e);
        let built = op.build(self.ir.context, self.ir.value(a), self.ir.value(b), self.location());
        self.push1(built)
    }

    /// `v` converted to element type `to` (keeping its shape).
    pub(super) fn cast(&mut self, op: Conv, v: Val, to: Elem) -> Val {
        let from = self.ir.elem_of(v);
        self.check_vector_arith(op.name(), &[v], from, to);
        let ty = self.ir.like(v, to);
        let built = op.build(self.ir.value(v), ty, self.location());
        let r = self.push1(built);
        if self.lanes.is_some() && op == Conv::ExtF && from == Elem::Bf16 && to == Elem::F32 {
            self.mark_bf16_extended(r);
        }
        r
    }

    pub(super) fn negf(&mut self, a: Val) -> Val {
        self.check_vector_arith("arith.negf", &[a], Elem::F32, Elem::F32);
        let built = arith::negf(self.ir.value(a), self.location());
        self.push1(built)
    }

    pub(super) fn cmpf(&mut self, pred: CmpfPredicate, a: Val, b: Val) -> Val {
        self.check_vector_arith("arith.cmpf", &[a, b], self.ir.elem_of(a), Elem::I1);
        let built = arith::cmpf(self.ir.context, pred, self.ir.value(a), self.ir.value(b), self.location());
        self.push1(built)
    }

    pub(super) fn cmpi(&mut self, pred: CmpiPredicate, a: Val, b: Val) -> Val {
        self.check_vector_arith("arith.cmpi", &[a, b], self.ir.elem_of(a), Elem::I1);
        let built = arith::cmpi(self.ir.context, pred, self.ir.value(a), self.ir.value(b), self.location());
        self.push1(built)
    }

    pub(super) fn select(&mut self, c: Val, a: Val, b: Val) -> Val {
        let e = self.ir.elem_of(a);
        self.check_vector_arith("arith.select", &[a, b], e, e);
        let built = arith::select(self.ir.value(c), self.ir.value(a), self.ir.value(b), self.location());
        self.push1(built)
    }

    pub(super) fn addi(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::AddI, a, b)
    }
    pub(super) fn subi(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::SubI, a, b)
    }
    pub(super) fn muli(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::MulI, a, b)
    }
    pub(super) fn maxsi(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::MaxSI, a, b)
    }
    pub(super) fn minsi(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::MinSI, a, b)
    }
    pub(super) fn andi(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::AndI, a, b)
    }
    pub(super) fn ori(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::OrI, a, b)
    }
    pub(super) fn addf(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::AddF, a, b)
    }
    pub(super) fn subf(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::SubF, a, b)
    }
    pub(super) fn mulf(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::MulF, a, b)
    }
    pub(super) fn maximumf(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::MaximumF, a, b)
    }
    pub(super) fn minimumf(&mut self, a: Val, b: Val) -> Val {
        self.bin(Bin::MinimumF, a, b)
    }
    pub(super) fn extf(&mut self, v: Val, to: Elem) -> Val {
        self.cast(Conv::ExtF, v, to)
    }
    pub(super) fn truncf(&mut self, v: Val, to: Elem) -> Val {
        self.cast(Conv::TruncF, v, to)
    }
    pub(super) fn extsi(&mut self, v: Val, to: Elem) -> Val {
        self.cast(Conv::ExtSI, v, to)
    }
    pub(super) fn trunci(&mut self, v: Val, to: Elem) -> Val {
        self.cast(Conv::TruncI, v, to)
    }
    pub(super) fn sitofp(&mut self, v: Val) -> Val {
        self.cast(Conv::SIToFP, v, Elem::F32)
    }
    pub(super) fn fptosi(&mut self, v: Val) -> Val {
        self.cast(Conv::FPToSI, v, Elem::I32)
    }
    pub(super) fn bitcast(&mut self, v: Val, to: Elem) -> Val {
        self.cast(Conv::Bitcast, v, to)
    }
    pub(super) fn index_cast(&mut self, v: Val, to: Elem) -> Val {
        self.cast(Conv::IndexCast, v, to)
    }
}
