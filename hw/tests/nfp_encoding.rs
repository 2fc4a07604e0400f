//! Encoder tables for the NFP microengine instruction set: each row is an instruction, the
//! 64-bit word it must encode to, and its listing text. The words were worked out
//! independently of the encoder, field by field from the masks of the Linux driver's
//! `nfp_asm.h` with its ECC polynomials (`nfp_asm.c`); every row also decodes back.

use hw::nfp::insn::*;
use hw::nfp::regs::{Bank, Dest, Operand};
use hw::nfp::{decode, encode, format_insn, EncodeError};

fn a(n: u8) -> Operand {
    Operand::Gpr(Bank::A, n)
}
fn b(n: u8) -> Operand {
    Operand::Gpr(Bank::B, n)
}

fn table() -> Vec<(Insn, u64, &'static str)> {
    vec![
        (
            Insn::Alu {
                dst: Dest::Gpr(Bank::A, 1),
                a: a(2),
                op: AluOp::Add,
                b: b(3),
            },
            0x000ea0a080100c02,
            "alu[a1, a2, +, b3]",
        ),
        (
            // The left operand is in bank B: the fields swap and the swap bit is set.
            Insn::Alu {
                dst: Dest::Gpr(Bank::B, 4),
                a: b(5),
                op: AluOp::Sub,
                b: a(6),
            },
            0x000e40bac0401406,
            "alu[b4, b5, -, a6]",
        ),
        (
            Insn::Alu {
                dst: Dest::Both(2),
                a: Operand::None,
                op: AluOp::PassB,
                b: Operand::Imm(0x12),
            },
            0x0001e2a0002c4800,
            "alu[ab2, --, B, 0x12]",
        ),
        (
            Insn::Alu {
                dst: Dest::None,
                a: Operand::Xfer(9),
                op: AluOp::Xor,
                b: b(1),
            },
            0x0007c0ac30000589,
            "alu[--, $xfer_9, XOR, b1]",
        ),
        (
            Insn::Shf {
                dst: Dest::Gpr(Bank::A, 3),
                a: Operand::None,
                op: ShfOp::None,
                b: b(4),
                sc: ShiftClass::Left,
                shift: 5,
            },
            0x0008608050301200,
            "alu_shf[a3, --, B, b4, <<5]",
        ),
        (
            Insn::Immed {
                dst: Dest::Gpr(Bank::A, 7),
                imm: 0x1234,
                shift: 2,
                width: ImmedWidth::All,
                inv: false,
            },
            0x0008a0f4012cd007,
            "immed[a7, 0x1234, <<16]",
        ),
        (
            Insn::Br {
                cond: BrCond::Eq,
                target: 100,
                defer: 1,
            },
            0x000dc0d819108120,
            "beq[.100], defer[1]",
        ),
        (
            Insn::BrBit {
                src: a(2),
                bit: 5,
                set: true,
                target: 7,
                defer: 0,
            },
            0x0001c0d001c49402,
            "br_bset[a2, 5, .7]",
        ),
        (
            // A B-bank source goes to the B field and the compared byte to the A field.
            Insn::BrByte {
                src: b(3),
                byte: 1,
                value: 0x45,
                eq: true,
                target: 9,
                defer: 0,
            },
            0x000040c802480da5,
            "br=byte[b3, 1, 0x45, .9]",
        ),
        (
            Insn::Cmd {
                level: MemLevel::Ctm,
                action: MemAction::Read,
                xfer: 8,
                count: 2,
                a: a(2),
                b: Operand::Imm(4),
                sig: 1,
                swap: CtxSwap::Swap,
                mode: AddrMode::Implied,
                token: 0,
            },
            0x0002f02014809002,
            "mem_ctm[read_le, $xfer_8, a2, 0x4, 2, implied], sig_done[1], ctx_swap",
        ),
        (
            Insn::LocalCsrWr {
                csr: CSR_ACT_LM_ADDR[0],
                src: a(3),
            },
            0x0004e0fc066c0003,
            "local_csr_wr[0x64, a3]",
        ),
        (Insn::CtxArb, 0x0006e0e000000000, "ctx_arb[voluntary]"),
        (
            Insn::Mul {
                step: MulStep::Start,
                dst: Dest::None,
                a: a(1),
                b: b(2),
            },
            0x000020f800000801,
            "mul_step[a1, b2], 32x32_start",
        ),
        (
            Insn::Mul {
                step: MulStep::Last,
                dst: Dest::Gpr(Bank::A, 5),
                a: Operand::None,
                b: Operand::None,
            },
            0x000120f980400005,
            "mul_step[a5, --], 32x32_last",
        ),
        (
            Insn::LdField {
                dst: Dest::Gpr(Bank::A, 1),
                bmask: 0b0101,
                src: b(2),
                sc: ShiftClass::Left,
                shift: 8,
                zero: true,
            },
            0x000d60c085100a01,
            "ld_field_w_clr[a1, 0101, b2, <<8]",
        ),
    ]
}

#[test]
fn instructions_encode_to_the_driver_layout_and_back() {
    for (insn, word, text) in table() {
        assert_eq!(
            encode(&insn),
            Ok(word),
            "{text}: expected {word:#018x}, encoded {:#018x?}",
            encode(&insn)
        );
        assert_eq!(decode(word), Ok(insn), "{text}: decoding {word:#018x}");
        assert_eq!(format_insn(&insn), text);
    }
}

#[test]
fn a_flipped_bit_is_caught_by_the_ecc() {
    for (_, word, text) in table() {
        for bitno in [0, 13, 39, 44, 45, 51] {
            let bad = word ^ (1 << bitno);
            assert!(
                decode(bad).is_err(),
                "{text}: flipping bit {bitno} still decodes"
            );
        }
    }
}

#[test]
fn the_bank_restriction_is_enforced() {
    let same_bank = Insn::Alu {
        dst: Dest::Gpr(Bank::A, 0),
        a: a(1),
        op: AluOp::Add,
        b: a(2),
    };
    assert!(matches!(encode(&same_bank), Err(EncodeError::SameBank(_))));
    let two_immediates = Insn::Alu {
        dst: Dest::Gpr(Bank::A, 0),
        a: Operand::Imm(1),
        op: AluOp::Add,
        b: Operand::Imm(2),
    };
    assert!(matches!(
        encode(&two_immediates),
        Err(EncodeError::Operand(_))
    ));
    let nn_restricted = Insn::Shf {
        dst: Dest::Gpr(Bank::A, 0),
        a: Operand::None,
        op: ShfOp::None,
        b: Operand::Nn(1),
        sc: ShiftClass::Left,
        shift: 1,
    };
    assert!(encode(&nn_restricted).is_err());
}

/// Every combination of a family of operands round-trips through encode and decode.
#[test]
fn operand_families_round_trip() {
    let sources = [
        a(0),
        a(31),
        b(0),
        b(17),
        Operand::Xfer(3),
        Operand::Nn(5),
        Operand::Lm {
            index: 3,
            offset: 7,
        },
        Operand::Imm(0),
        Operand::Imm(0xff),
    ];
    let dests = [
        Dest::Gpr(Bank::A, 3),
        Dest::Gpr(Bank::B, 30),
        Dest::Both(9),
        Dest::Xfer(12),
        Dest::Lm {
            index: 2,
            offset: 1,
        },
        Dest::None,
    ];
    let mut encoded = 0;
    for &x in &sources {
        for &y in &sources {
            for &d in &dests {
                for op in [AluOp::Add, AluOp::Sub, AluOp::And, AluOp::SubC] {
                    let insn = Insn::Alu {
                        dst: d,
                        a: x,
                        op,
                        b: y,
                    };
                    if let Ok(w) = encode(&insn) {
                        encoded += 1;
                        assert_eq!(decode(w), Ok(insn), "{}", format_insn(&insn));
                    }
                }
                let shf = Insn::Shf {
                    dst: d,
                    a: x,
                    op: ShfOp::Or,
                    b: y,
                    sc: ShiftClass::Right,
                    shift: 7,
                };
                if let Ok(w) = encode(&shf) {
                    encoded += 1;
                    assert_eq!(decode(w), Ok(shf), "{}", format_insn(&shf));
                }
            }
        }
        for &d in &dests {
            for (imm, shift, width) in [
                (0u16, 0u8, ImmedWidth::All),
                (0xffff, 1, ImmedWidth::All),
                (0xbeef, 2, ImmedWidth::Word),
                (0x7f, 3 % 3, ImmedWidth::Byte),
            ] {
                let im = Insn::Immed {
                    dst: d,
                    imm,
                    shift,
                    width,
                    inv: imm == 0xffff,
                };
                if let Ok(w) = encode(&im) {
                    encoded += 1;
                    assert_eq!(decode(w), Ok(im), "{}", format_insn(&im));
                }
            }
        }
        if !matches!(x, Operand::Imm(_) | Operand::Nn(_)) {
            for target in [0u16, 1, 0x1fff, 0x2000, EXIT_TARGET] {
                for insn in [
                    Insn::BrBit {
                        src: x,
                        bit: 31,
                        set: false,
                        target,
                        defer: 2,
                    },
                    Insn::BrByte {
                        src: x,
                        byte: 3,
                        value: 0xa5,
                        eq: false,
                        target,
                        defer: 3,
                    },
                ] {
                    let w = encode(&insn).unwrap_or_else(|e| panic!("{insn:?}: {e}"));
                    encoded += 1;
                    assert_eq!(decode(w), Ok(insn), "{}", format_insn(&insn));
                }
            }
        }
    }
    for cond in BrCond::ALL {
        let br = Insn::Br {
            cond,
            target: 0x2abc,
            defer: 3,
        };
        assert_eq!(decode(encode(&br).unwrap()), Ok(br));
    }
    for level in MemLevel::ALL {
        for action in MemAction::ALL {
            let cmd = Insn::Cmd {
                level,
                action,
                xfer: 31,
                count: 3,
                a: if action == MemAction::Helper {
                    Operand::None
                } else {
                    a(4)
                },
                b: b(5),
                sig: 15,
                swap: CtxSwap::NoSwap,
                mode: AddrMode::Region,
                token: 3,
            };
            assert_eq!(decode(encode(&cmd).unwrap()), Ok(cmd));
        }
    }
    assert!(encoded > 300, "only {encoded} combinations encoded");
}

#[test]
fn the_latency_table_parses_and_orders_the_memories() {
    let t = hw::nfp::LatencyTable::shipped().unwrap();
    assert!(t.memory.lm < t.memory.cls);
    assert!(t.memory.cls < t.memory.ctm);
    assert!(t.memory.ctm < t.memory.imem);
    assert!(t.memory.imem < t.memory.emem);
}
