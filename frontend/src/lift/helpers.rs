//! How many arguments each kernel helper takes, by helper id.
//!
//! A helper call in BPF passes r1 to r5 implicitly; the kernel verifier checks only the
//! registers that the helper's prototype declares, so a program may leave the others unset.
//! The lifter must therefore know the real argument count to pass exactly the registers the
//! helper reads (and to reject a call whose declared argument register was never set). The
//! counts follow the prototypes in the kernel's `include/uapi/linux/bpf.h` helper list.

/// The argument count of a helper, or what is special about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperArgs {
    /// The helper takes exactly this many arguments, r1 first.
    Fixed(u8),
    /// `bpf_trace_printk`: two declared arguments (format and its size) and up to three more
    /// that the format string consumes; the verifier does not check the extra ones.
    Variadic,
    /// A helper id this table does not know; the lifter passes all five registers.
    Unknown,
}

const VARIADIC: HelperArgs = HelperArgs::Variadic;
const UNKNOWN: HelperArgs = HelperArgs::Unknown;

/// Argument counts indexed by helper id (0 is not a helper).
const TABLE: [HelperArgs; 212] = {
    use HelperArgs::Fixed as F;
    [
        /* 0 */ UNKNOWN,
        /* 1 */ F(2),
        /* 2 */ F(4),
        /* 3 */ F(2),
        /* 4 */ F(3),
        /* 5 */ F(0),
        /* 6 */ VARIADIC,
        /* 7 */ F(0),
        /* 8 */ F(0),
        /* 9 */ F(5),
        /* 10 */ F(5),
        /* 11 */ F(5),
        /* 12 */ F(3),
        /* 13 */ F(3),
        /* 14 */ F(0),
        /* 15 */ F(0),
        /* 16 */ F(2),
        /* 17 */ F(1),
        /* 18 */ F(3),
        /* 19 */ F(1),
        /* 20 */ F(4),
        /* 21 */ F(4),
        /* 22 */ F(2),
        /* 23 */ F(2),
        /* 24 */ F(1),
        /* 25 */ F(5),
        /* 26 */ F(4),
        /* 27 */ F(3),
        /* 28 */ F(5),
        /* 29 */ F(3),
        /* 30 */ F(3),
        /* 31 */ F(3),
        /* 32 */ F(2),
        /* 33 */ F(3),
        /* 34 */ F(1),
        /* 35 */ F(0),
        /* 36 */ F(3),
        /* 37 */ F(2),
        /* 38 */ F(3),
        /* 39 */ F(2),
        /* 40 */ F(2),
        /* 41 */ F(1),
        /* 42 */ F(0),
        /* 43 */ F(3),
        /* 44 */ F(2),
        /* 45 */ F(3),
        /* 46 */ F(1),
        /* 47 */ F(1),
        /* 48 */ F(2),
        /* 49 */ F(5),
        /* 50 */ F(4),
        /* 51 */ F(3),
        /* 52 */ F(4),
        /* 53 */ F(4),
        /* 54 */ F(2),
        /* 55 */ F(4),
        /* 56 */ F(3),
        /* 57 */ F(5),
        /* 58 */ F(2),
        /* 59 */ F(2),
        /* 60 */ F(4),
        /* 61 */ F(2),
        /* 62 */ F(2),
        /* 63 */ F(4),
        /* 64 */ F(3),
        /* 65 */ F(2),
        /* 66 */ F(5),
        /* 67 */ F(4),
        /* 68 */ F(5),
        /* 69 */ F(4),
        /* 70 */ F(4),
        /* 71 */ F(4),
        /* 72 */ F(4),
        /* 73 */ F(4),
        /* 74 */ F(4),
        /* 75 */ F(3),
        /* 76 */ F(4),
        /* 77 */ F(1),
        /* 78 */ F(4),
        /* 79 */ F(1),
        /* 80 */ F(0),
        /* 81 */ F(2),
        /* 82 */ F(4),
        /* 83 */ F(2),
        /* 84 */ F(5),
        /* 85 */ F(5),
        /* 86 */ F(1),
        /* 87 */ F(3),
        /* 88 */ F(2),
        /* 89 */ F(2),
        /* 90 */ F(4),
        /* 91 */ F(4),
        /* 92 */ F(3),
        /* 93 */ F(1),
        /* 94 */ F(1),
        /* 95 */ F(1),
        /* 96 */ F(1),
        /* 97 */ F(1),
        /* 98 */ F(1),
        /* 99 */ F(5),
        /* 100 */ F(5),
        /* 101 */ F(4),
        /* 102 */ F(3),
        /* 103 */ F(3),
        /* 104 */ F(3),
        /* 105 */ F(4),
        /* 106 */ F(4),
        /* 107 */ F(4),
        /* 108 */ F(2),
        /* 109 */ F(1),
        /* 110 */ F(5),
        /* 111 */ F(5),
        /* 112 */ F(3),
        /* 113 */ F(3),
        /* 114 */ F(3),
        /* 115 */ F(3),
        /* 116 */ F(2),
        /* 117 */ F(1),
        /* 118 */ F(0),
        /* 119 */ F(4),
        /* 120 */ F(4),
        /* 121 */ F(5),
        /* 122 */ F(1),
        /* 123 */ F(1),
        /* 124 */ F(3),
        /* 125 */ F(0),
        /* 126 */ F(5),
        /* 127 */ F(3),
        /* 128 */ F(1),
        /* 129 */ F(2),
        /* 130 */ F(4),
        /* 131 */ F(3),
        /* 132 */ F(2),
        /* 133 */ F(2),
        /* 134 */ F(2),
        /* 135 */ F(2),
        /* 136 */ F(1),
        /* 137 */ F(1),
        /* 138 */ F(1),
        /* 139 */ F(1),
        /* 140 */ F(1),
        /* 141 */ F(4),
        /* 142 */ F(4),
        /* 143 */ F(4),
        /* 144 */ F(3),
        /* 145 */ F(4),
        /* 146 */ F(2),
        /* 147 */ F(3),
        /* 148 */ F(3),
        /* 149 */ F(5),
        /* 150 */ F(4),
        /* 151 */ F(1),
        /* 152 */ F(4),
        /* 153 */ F(2),
        /* 154 */ F(1),
        /* 155 */ F(2),
        /* 156 */ F(4),
        /* 157 */ F(2),
        /* 158 */ F(0),
        /* 159 */ F(2),
        /* 160 */ F(0),
        /* 161 */ F(3),
        /* 162 */ F(1),
        /* 163 */ F(5),
        /* 164 */ F(4),
        /* 165 */ F(5),
        /* 166 */ F(3),
        /* 167 */ F(4),
        /* 168 */ F(1),
        /* 169 */ F(3),
        /* 170 */ F(2),
        /* 171 */ F(3),
        /* 172 */ F(1),
        /* 173 */ F(1),
        /* 174 */ F(1),
        /* 175 */ F(1),
        /* 176 */ F(3),
        /* 177 */ F(4),
        /* 178 */ F(1),
        /* 179 */ F(4),
        /* 180 */ F(5),
        /* 181 */ F(4),
        /* 182 */ F(3),
        /* 183 */ F(3),
        /* 184 */ F(2),
        /* 185 */ F(1),
        /* 186 */ F(0),
        /* 187 */ F(1),
        /* 188 */ F(1),
        /* 189 */ F(4),
        /* 190 */ F(4),
        /* 191 */ F(5),
        /* 192 */ F(3),
        /* 193 */ F(3),
        /* 194 */ F(2),
        /* 195 */ F(3),
        /* 196 */ F(1),
        /* 197 */ F(4),
        /* 198 */ F(4),
        /* 199 */ F(2),
        /* 200 */ F(2),
        /* 201 */ F(5),
        /* 202 */ F(5),
        /* 203 */ F(3),
        /* 204 */ F(3),
        /* 205 */ F(3),
        /* 206 */ F(2),
        /* 207 */ F(2),
        /* 208 */ F(0),
        /* 209 */ F(4),
        /* 210 */ F(4),
        /* 211 */ F(2),
    ]
};

/// The number of arguments helper `id` takes.
pub fn helper_args(id: i32) -> HelperArgs {
    usize::try_from(id)
        .ok()
        .and_then(|i| TABLE.get(i).copied())
        .unwrap_or(HelperArgs::Unknown)
}

/// Helper ids the lifter treats specially.
pub const MAP_LOOKUP_ELEM: i32 = 1;
pub const TAIL_CALL: i32 = 12;
pub const MAP_LOOKUP_PERCPU_ELEM: i32 = 195;

/// Helpers whose result is a pointer into memory the lifter cannot name (sockets, ring buffer
/// records, kernel objects), so that accesses through it get the `any` region rather than
/// being mistaken for scalars.
pub fn returns_opaque_pointer(id: i32) -> bool {
    matches!(
        id,
        35 | 81 | 84 | 85 | 95 | 96 | 98 | 99 | 107 | 131 | 136
            ..=140 | 145 | 153 | 154 | 156 | 158 | 162 | 175 | 178 | 194 | 196 | 203 | 210
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_prototypes() {
        assert_eq!(helper_args(1), HelperArgs::Fixed(2));
        assert_eq!(helper_args(5), HelperArgs::Fixed(0));
        assert_eq!(helper_args(6), HelperArgs::Variadic);
        assert_eq!(helper_args(12), HelperArgs::Fixed(3));
        assert_eq!(helper_args(25), HelperArgs::Fixed(5));
        assert_eq!(helper_args(44), HelperArgs::Fixed(2));
        assert_eq!(helper_args(0), HelperArgs::Unknown);
        assert_eq!(helper_args(-3), HelperArgs::Unknown);
        assert_eq!(helper_args(100_000), HelperArgs::Unknown);
    }
}
