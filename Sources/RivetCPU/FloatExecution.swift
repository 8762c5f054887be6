import RivetFloat

extension Hart {
    /// Executes the F/D micro-ops that the executor's switch does not handle itself (it runs the hot
    /// double-precision arithmetic inline). False = illegal instruction (FS off or bad rounding mode), pending set.
    @inline(__always)
    func executeFloat(_ op: MicroOp) -> Bool {
        guard fpAllowed else { return illegalPending() }
        let rd = Int(op.rd), a = f[Int(op.rs1)], b = f[Int(op.rs2)], c = f[Int(op.rs3)]
        var rm = UInt32(op.extra)
        if rm == 7 { rm = UInt32(csr.frm) }
        // Start from the accrued flags: RivetFloat skips exactness work for flags already set (NX is
        // sticky, so after the first inexact result most operations take the host fast path).
        var fl = UInt32(truncatingIfNeeded: csr.fflags)
        let usesRM: Bool
        switch op.op {
        case .fminS, .fmaxS, .fminD, .fmaxD, .fsgnjS, .fsgnjnS, .fsgnjxS,
             .feqS, .fltS, .fleS, .feqD, .fltD, .fleD, .fclassS, .fclassD, .fmvXW, .fmvWX, .fmvXD, .fmvDX, .fcvtDS:
            usesRM = false
        default:
            usesRM = true
        }
        if usesRM && rm > 4 { return illegalPending() }
        let xs1 = x[Int(op.rs1)]
        switch op.op {
        case .faddS: f[rd] = RVFloat.add_s(a, b, rm, &fl)
        case .fsubS: f[rd] = RVFloat.sub_s(a, b, rm, &fl)
        case .fmulS: f[rd] = RVFloat.mul_s(a, b, rm, &fl)
        case .fdivS: f[rd] = RVFloat.div_s(a, b, rm, &fl)
        case .fsqrtS: f[rd] = RVFloat.sqrt_s(a, rm, &fl)
        case .fminS: f[rd] = RVFloat.min_s(a, b, &fl)
        case .fmaxS: f[rd] = RVFloat.max_s(a, b, &fl)
        case .fmaddS: f[rd] = RVFloat.madd_s(a, b, c, rm, &fl)
        case .fmsubS: f[rd] = RVFloat.msub_s(a, b, c, rm, &fl)
        case .fnmsubS: f[rd] = RVFloat.nmsub_s(a, b, c, rm, &fl)
        case .fnmaddS: f[rd] = RVFloat.nmadd_s(a, b, c, rm, &fl)
        case .fsgnjS: f[rd] = RVFloat.sgnj_s(a, b)
        case .fsgnjnS: f[rd] = RVFloat.sgnjn_s(a, b)
        case .fsgnjxS: f[rd] = RVFloat.sgnjx_s(a, b)
        case .feqS: x[rd] = RVFloat.eq_s(a, b, &fl)
        case .fltS: x[rd] = RVFloat.lt_s(a, b, &fl)
        case .fleS: x[rd] = RVFloat.le_s(a, b, &fl)
        case .fclassS: x[rd] = RVFloat.class_s(a)
        case .fmvXW: x[rd] = sext32(UInt32(truncatingIfNeeded: a))
        case .fmvWX: f[rd] = 0xffff_ffff_0000_0000 | (xs1 & 0xffff_ffff)
        case .fcvtWS: x[rd] = RVFloat.cvt_w_s(a, rm, &fl)
        case .fcvtWUS: x[rd] = RVFloat.cvt_wu_s(a, rm, &fl)
        case .fcvtLS: x[rd] = RVFloat.cvt_l_s(a, rm, &fl)
        case .fcvtLUS: x[rd] = RVFloat.cvt_lu_s(a, rm, &fl)
        case .fcvtSW: f[rd] = RVFloat.cvt_s_w(xs1, rm, &fl)
        case .fcvtSWU: f[rd] = RVFloat.cvt_s_wu(xs1, rm, &fl)
        case .fcvtSL: f[rd] = RVFloat.cvt_s_l(xs1, rm, &fl)
        case .fcvtSLU: f[rd] = RVFloat.cvt_s_lu(xs1, rm, &fl)
        case .fsqrtD: f[rd] = RVFloat.sqrt_d(a, rm, &fl)
        case .fminD: f[rd] = RVFloat.min_d(a, b, &fl)
        case .fmaxD: f[rd] = RVFloat.max_d(a, b, &fl)
        case .feqD: x[rd] = RVFloat.eq_d(a, b, &fl)
        case .fltD: x[rd] = RVFloat.lt_d(a, b, &fl)
        case .fleD: x[rd] = RVFloat.le_d(a, b, &fl)
        case .fclassD: x[rd] = RVFloat.class_d(a)
        case .fmvXD: x[rd] = a
        case .fmvDX: f[rd] = xs1
        case .fcvtWD: x[rd] = RVFloat.cvt_w_d(a, rm, &fl)
        case .fcvtWUD: x[rd] = RVFloat.cvt_wu_d(a, rm, &fl)
        case .fcvtLD: x[rd] = RVFloat.cvt_l_d(a, rm, &fl)
        case .fcvtLUD: x[rd] = RVFloat.cvt_lu_d(a, rm, &fl)
        case .fcvtDW: f[rd] = RVFloat.cvt_d_w(xs1, rm, &fl)
        case .fcvtDWU: f[rd] = RVFloat.cvt_d_wu(xs1, rm, &fl)
        case .fcvtDL: f[rd] = RVFloat.cvt_d_l(xs1, rm, &fl)
        case .fcvtDLU: f[rd] = RVFloat.cvt_d_lu(xs1, rm, &fl)
        case .fcvtSD: f[rd] = RVFloat.cvt_s_d(a, rm, &fl)
        case .fcvtDS: f[rd] = RVFloat.cvt_d_s(a, &fl)
        default: return illegalPending()
        }
        csr.fflags = UInt64(fl)
        markFPDirty()
        return true
    }

    func illegalPending() -> Bool { pendingCause = 2; pendingTval = 0; return false }
}
