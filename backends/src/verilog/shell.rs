//! The shell wrapper: the pipeline core inside an OpenNIC-style top level, so that the design
//! plugs into a NIC shell's user box as it is.
//!
//! The OpenNIC shell's 250 MHz user box talks AXI4-Stream (`tdata`, `tkeep`, `tlast`,
//! `tuser_size`, `tuser_src`, `tuser_dst`, `tvalid`, `tready`) and AXI4-Lite for registers
//! (Xilinx/open-nic-shell, README.md, "Shell Interface"); this module emits, through the syntax
//! tree of `vast.rs`:
//!
//! - `<name>_skid`: a two-entry skid buffer whose `s_ready` is a register, so that no ready
//!   signal runs combinationally through the design (the design note: a combinational ready
//!   chain, not the datapath, limits the clock of a pipelined design).
//! - `<name>_shell`: the top level. Ingress beats pass a skid buffer; the first
//!   `WINDOW_BYTES` bytes of each packet are gathered into the window the core takes, bytes
//!   past `tuser_size` zeroed (OpenNIC allows an all-ones `tkeep` on packets entering user
//!   logic, so the length comes from `tuser_size`), and every beat, window included, waits in
//!   a FIFO beside the pipeline. When the core gives a packet's verdict, egress replays the
//!   packet's beats from the FIFO with the core's window written over the head: dropped
//!   packets' beats are discarded, others leave through a second skid buffer with `tuser_dst`
//!   set by the verdict. Back-pressure (`m_axis_tready` low) stalls egress, then the core, then
//!   ingress: nothing is lost. An AXI4-Lite slave gives the control plane every map row through
//!   a mailbox ([`register_map`]).
//!
//! `DATA_WIDTH` (the bus width, default 512), `CLOCK_PERIOD_PS` (the clock the core was
//! scheduled for), `FIFO_ADDR_BITS` and `PASS_DST` are Verilog parameters: everything that
//! depends on the bus width is written in terms of `DATA_WIDTH`, so one file serves any width
//! that is a multiple of 8 bits.

use super::emit::{core_name, input_port, output_port, output_width, CTL_MEM_BITS, CTL_ROW_BITS};
use super::vast::{BinOp, Dir, Expr, Item, Module, Port, Stmt, UnOp, Width};
use hw::pipeline::{Block, Input, Output, REDIRECT_IFINDEX};

/// The 32-bit value of the identification register (`"nicc"` in ASCII).
pub const SHELL_ID: u32 = 0x6e69_6363;
/// Register addresses (byte offsets in the AXI4-Lite space; every register is 32 bits).
pub const REG_ID: u32 = 0x000;
pub const REG_INFO: u32 = 0x004;
pub const REG_MEM: u32 = 0x008;
pub const REG_ROW: u32 = 0x00c;
pub const REG_COMMAND: u32 = 0x010;
pub const REG_RX_PACKETS: u32 = 0x014;
pub const REG_TX_PACKETS: u32 = 0x018;
pub const REG_DROP_PACKETS: u32 = 0x01c;
pub const REG_DONE_PACKETS: u32 = 0x020;
pub const REG_DATA_WIDTH: u32 = 0x024;
pub const REG_CLOCK_PERIOD: u32 = 0x028;
/// Memory `k`'s row count is at `REG_MEMORY_INFO + 8k`, its bytes per row 4 bytes further.
pub const REG_MEMORY_INFO: u32 = 0x400;
/// Word `i` of the row buffer (row bytes `4i..4i+4`, little-endian) is at `REG_DATA + 4i`.
pub const REG_DATA: u32 = 0x800;
/// Writing this to [`REG_COMMAND`] copies row `ROW` of memory `MEM` into the row buffer.
pub const COMMAND_READ_ROW: u32 = 1;
/// Writing this to [`REG_COMMAND`] writes the row buffer into row `ROW` of memory `MEM`.
pub const COMMAND_WRITE_ROW: u32 = 2;
/// The most memories and row-buffer words the register space has room for.
pub const MAX_MEMORIES: usize = 128;
pub const MAX_DATA_WORDS: u32 = 512;
/// The `tuser_dst` of packets passed to the host by default: PCIe physical function 0 (bits
/// 3..0 of `tuser_dst` name PCIe PFs, bits 15..6 MAC ports, in the OpenNIC format).
pub const DEFAULT_PASS_DST: u64 = 0x0001;

/// One register of the AXI4-Lite space, for the README.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterDoc {
    pub address: u32,
    pub name: String,
    pub access: &'static str,
    pub meaning: String,
}

/// Words of the row buffer: the widest memory row, in 32-bit words.
pub fn data_words(block: &Block) -> u32 {
    block.max_row_bytes().div_ceil(4)
}

/// The module name of a block's shell.
pub fn shell_name(block: &Block) -> String {
    format!("{}_shell", block.name)
}

/// The module name of a block's skid buffer.
pub fn skid_name(block: &Block) -> String {
    format!("{}_skid", block.name)
}

/// The AXI4-Lite register map of `block`'s shell.
pub fn register_map(block: &Block) -> Vec<RegisterDoc> {
    let r = |address: u32, name: &str, access: &'static str, meaning: String| RegisterDoc {
        address,
        name: name.to_string(),
        access,
        meaning,
    };
    let mut v = vec![
        r(REG_ID, "ID", "RO", format!("{SHELL_ID:#010x} (`nicc` in ASCII)")),
        r(
            REG_INFO,
            "INFO",
            "RO",
            format!(
                "bits 7..0 memories ({}), 15..8 row-buffer words ({}), 31..16 window bytes ({})",
                block.memories.len(),
                data_words(block),
                block.window_bytes
            ),
        ),
        r(REG_MEM, "MEM", "RW", "memory (map) the mailbox works on, bits 7..0".into()),
        r(REG_ROW, "ROW", "RW", "row of that memory (the array map's key)".into()),
        r(
            REG_COMMAND,
            "COMMAND",
            "WO",
            format!(
                "{COMMAND_READ_ROW}: copy row ROW of memory MEM into the row buffer; {COMMAND_WRITE_ROW}: write the row buffer into it (the pipeline holds for that cycle, so the write lands between two packets)"
            ),
        ),
        r(REG_RX_PACKETS, "RX_PACKETS", "RO", "packets received (last beats accepted)".into()),
        r(REG_TX_PACKETS, "TX_PACKETS", "RO", "packets sent (pass, tx, redirect)".into()),
        r(REG_DROP_PACKETS, "DROP_PACKETS", "RO", "packets dropped (drop, aborted, failed redirect)".into()),
        r(REG_DONE_PACKETS, "DONE_PACKETS", "RO", "packets finished (sent or dropped); equal to RX_PACKETS when the shell is drained".into()),
        r(REG_DATA_WIDTH, "DATA_WIDTH", "RO", "the AXI4-Stream data width in bits".into()),
        r(REG_CLOCK_PERIOD, "CLOCK_PERIOD_PS", "RO", "the clock period the core was scheduled for".into()),
    ];
    for (k, m) in block.memories.iter().enumerate() {
        v.push(r(
            REG_MEMORY_INFO + 8 * k as u32,
            &format!("MEM{k}_ROWS"),
            "RO",
            format!("rows of memory {k} (map `{}`): {}", m.name, m.rows),
        ));
        v.push(r(
            REG_MEMORY_INFO + 8 * k as u32 + 4,
            &format!("MEM{k}_ROW_BYTES"),
            "RO",
            format!("bytes per row of memory {k}: {}", m.row_bytes),
        ));
    }
    v.push(r(
        REG_DATA,
        "DATA[i]",
        "RW",
        format!(
            "at {REG_DATA:#x} + 4i for i < {}: row-buffer word i, row bytes 4i..4i+3 little-endian",
            data_words(block)
        ),
    ));
    v
}

fn id(s: &str) -> Expr {
    Expr::ident(s)
}

fn int(v: u64) -> Expr {
    Expr::int(v)
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::bin(op, a, b)
}

fn and(a: Expr, b: Expr) -> Expr {
    bin(BinOp::LogicAnd, a, b)
}

fn or(a: Expr, b: Expr) -> Expr {
    bin(BinOp::LogicOr, a, b)
}

fn not(a: Expr) -> Expr {
    Expr::Unary(UnOp::LogicNot, Box::new(a))
}

fn eq(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Eq, a, b)
}

fn lt(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Lt, a, b)
}

fn add(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Add, a, b)
}

fn mul(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Mul, a, b)
}

fn set(l: Expr, r: Expr) -> Stmt {
    Stmt::NonBlocking(l, r)
}

fn wire(name: &str, width: impl Into<Width>) -> Item {
    Item::Decl {
        reg: false,
        name: name.into(),
        width: width.into(),
    }
}

fn reg(name: &str, width: impl Into<Width>) -> Item {
    Item::Decl {
        reg: true,
        name: name.into(),
        width: width.into(),
    }
}

fn assign(name: &str, e: Expr) -> Item {
    Item::Assign(id(name), e)
}

fn localparam(name: &str, value: Expr) -> Item {
    Item::LocalParam {
        name: name.into(),
        value,
    }
}

fn input(name: &str, width: impl Into<Width>) -> Port {
    Port::new(Dir::Input, name, width)
}

fn output(name: &str, width: impl Into<Width>) -> Port {
    Port::new(Dir::Output, name, width)
}

/// The two-entry skid buffer with a registered `s_ready`.
pub fn skid_module(block: &Block) -> Module {
    let w = || Width::Expr(id("WIDTH"));
    let body = vec![Stmt::If(
        id("rst"),
        vec![
            set(id("valid_r"), Expr::lit(1, 0)),
            set(id("skid_valid"), Expr::lit(1, 0)),
        ],
        vec![Stmt::If(
            or(id("m_ready"), not(id("valid_r"))),
            vec![Stmt::If(
                id("skid_valid"),
                vec![
                    set(id("data_r"), id("skid_r")),
                    set(id("valid_r"), Expr::lit(1, 1)),
                    set(id("skid_valid"), Expr::lit(1, 0)),
                ],
                vec![
                    set(id("data_r"), id("s_data")),
                    set(id("valid_r"), id("s_valid")),
                ],
            )],
            vec![Stmt::If(
                and(id("s_valid"), not(id("skid_valid"))),
                vec![
                    set(id("skid_r"), id("s_data")),
                    set(id("skid_valid"), Expr::lit(1, 1)),
                ],
                vec![],
            )],
        )],
    )];
    Module {
        name: skid_name(block),
        doc: vec![
            "A two-entry skid buffer, generated by nicc: `s_ready` is a register (it falls only"
                .into(),
            "after the output stalled while a word was in flight), and with `m_ready` high a word"
                .into(),
            "passes every cycle.".into(),
        ],
        params: vec![("WIDTH".into(), int(8))],
        ports: vec![
            input("clk", 1),
            input("rst", 1),
            input("s_valid", 1),
            output("s_ready", 1),
            input("s_data", w()),
            output("m_valid", 1),
            input("m_ready", 1),
            output("m_data", w()),
        ],
        items: vec![
            reg("data_r", w()),
            reg("skid_r", w()),
            reg("valid_r", 1),
            reg("skid_valid", 1),
            assign("s_ready", Expr::bit_not(id("skid_valid"))),
            assign("m_valid", id("valid_r")),
            assign("m_data", id("data_r")),
            Item::AlwaysPosedge {
                clock: "clk".into(),
                body,
            },
        ],
    }
}

/// `name[base +: width]` with `base` and `width` in terms of parameters.
fn part(name: &str, base: Expr, width: Expr) -> Expr {
    Expr::part(name, base, width)
}

/// `DATA_WIDTH + k`.
fn dw_plus(k: u64) -> Expr {
    if k == 0 {
        id("DATA_WIDTH")
    } else {
        add(id("DATA_WIDTH"), int(k))
    }
}

/// The shell top level of `block`; an error when the block's memories do not fit the register
/// space.
pub fn shell_module(block: &Block) -> Result<Module, String> {
    if block.memories.len() > MAX_MEMORIES {
        return Err(format!(
            "the shell's register space describes at most {MAX_MEMORIES} memories; the program has {}",
            block.memories.len()
        ));
    }
    let words = data_words(block);
    if words > MAX_DATA_WORDS {
        return Err(format!(
            "a map row of {} bytes does not fit the shell's row buffer ({} bytes)",
            block.max_row_bytes(),
            4 * MAX_DATA_WORDS
        ));
    }
    let window_bits = block.window_bytes * 8;
    let row_bits = block.max_row_bytes() * 8;
    let rvalue_bits = output_width(block, Output::RedirectValue);
    let dw = || Width::Expr(id("DATA_WIDTH"));
    let bb = || Width::Expr(id("BEAT_BYTES"));
    let mut ports = vec![input("clk", 1), input("rst", 1)];
    for (dir_in, prefix) in [(true, "s_axis"), (false, "m_axis")] {
        let p = |n: &str| format!("{prefix}_{n}");
        // The slave port takes the signals in and gives `tready` out; the master the reverse.
        let (i, o) = if dir_in {
            (Dir::Input, Dir::Output)
        } else {
            (Dir::Output, Dir::Input)
        };
        let i = |n: &str, w: Width| Port::new(i, n, w);
        let o = |n: &str, w: Width| Port::new(o, n, w);
        ports.push(i(&p("tvalid"), 1.into()));
        ports.push(i(&p("tdata"), dw()));
        ports.push(i(&p("tkeep"), bb()));
        ports.push(i(&p("tlast"), 1.into()));
        ports.push(i(&p("tuser_size"), 16.into()));
        ports.push(i(&p("tuser_src"), 16.into()));
        ports.push(i(&p("tuser_dst"), 16.into()));
        ports.push(o(&p("tready"), 1.into()));
    }
    ports.extend([
        input("s_axil_awvalid", 1),
        input("s_axil_awaddr", 32),
        output("s_axil_awready", 1),
        input("s_axil_wvalid", 1),
        input("s_axil_wdata", 32),
        output("s_axil_wready", 1),
        output("s_axil_bvalid", 1),
        output("s_axil_bresp", 2),
        input("s_axil_bready", 1),
        input("s_axil_arvalid", 1),
        input("s_axil_araddr", 32),
        output("s_axil_arready", 1),
        output("s_axil_rvalid", 1),
        output("s_axil_rdata", 32),
        output("s_axil_rresp", 2),
        input("s_axil_rready", 1),
    ]);

    let mut items = vec![
        localparam("BEAT_BYTES", bin(BinOp::Div, id("DATA_WIDTH"), int(8))),
        localparam("WINDOW_BYTES", int(block.window_bytes as u64)),
        localparam(
            "WINDOW_BEATS",
            bin(
                BinOp::Div,
                bin(
                    BinOp::Sub,
                    add(id("WINDOW_BYTES"), id("BEAT_BYTES")),
                    int(1),
                ),
                id("BEAT_BYTES"),
            ),
        ),
        localparam("FIFO_DEPTH", bin(BinOp::Shl, int(1), id("FIFO_ADDR_BITS"))),
        localparam("FIFO_WIDTH", dw_plus(17)),
        localparam("IN_WIDTH", dw_plus(33)),
        localparam("OUT_WIDTH", add(dw_plus(49), id("BEAT_BYTES"))),
        localparam("DATA_WORDS", int(words as u64)),
    ];

    // Ingress: the skid buffer, then the window gatherer and the FIFO.
    items.push(Item::Comment(
        "Ingress: beats pass a skid buffer; tuser_src, tuser_size and tlast travel with the data."
            .into(),
    ));
    items.extend([
        wire("ib_valid", 1),
        wire("ib_ready", 1),
        wire("ib_data", Width::Expr(id("IN_WIDTH"))),
        Item::Instance {
            module: skid_name(block),
            name: "in_skid".into(),
            params: vec![("WIDTH".into(), id("IN_WIDTH"))],
            connections: vec![
                ("clk".into(), id("clk")),
                ("rst".into(), id("rst")),
                ("s_valid".into(), id("s_axis_tvalid")),
                ("s_ready".into(), id("s_axis_tready")),
                (
                    "s_data".into(),
                    Expr::Concat(vec![
                        id("s_axis_tuser_src"),
                        id("s_axis_tuser_size"),
                        id("s_axis_tlast"),
                        id("s_axis_tdata"),
                    ]),
                ),
                ("m_valid".into(), id("ib_valid")),
                ("m_ready".into(), id("ib_ready")),
                ("m_data".into(), id("ib_data")),
            ],
        },
        wire("ib_tdata", dw()),
        assign("ib_tdata", part("ib_data", int(0), id("DATA_WIDTH"))),
        wire("ib_last", 1),
        assign("ib_last", Expr::index("ib_data", id("DATA_WIDTH"))),
        wire("ib_size", 16),
        assign("ib_size", part("ib_data", dw_plus(1), int(16))),
        wire("ib_src", 16),
        assign("ib_src", part("ib_data", dw_plus(17), int(16))),
        reg("in_beat", 16),
        wire("ib_base", 32),
        assign("ib_base", mul(id("in_beat"), id("BEAT_BYTES"))),
        Item::Comment("Bytes at or past tuser_size are zero in the window and the FIFO.".into()),
        wire("ib_masked", dw()),
        Item::GenerateFor {
            var: "ib_byte".into(),
            count: id("BEAT_BYTES"),
            label: "ingress_mask".into(),
            items: vec![Item::Assign(
                part("ib_masked", mul(int(8), id("ib_byte")), int(8)),
                Expr::cond(
                    lt(add(id("ib_base"), id("ib_byte")), id("ib_size")),
                    part("ib_tdata", mul(int(8), id("ib_byte")), int(8)),
                    Expr::lit(8, 0),
                ),
            )],
        },
        reg("desc_valid", 1),
        reg("win_buf", Width::Expr(mul(id("WINDOW_BEATS"), id("DATA_WIDTH")))),
        reg("desc_len", 16),
        reg("desc_src", 16),
        Item::MemoryDecl {
            name: "fifo".into(),
            width: Width::Expr(id("FIFO_WIDTH")),
            depth: id("FIFO_DEPTH"),
        },
        reg("fifo_wr", Width::Expr(id("FIFO_ADDR_BITS"))),
        reg("fifo_rd", Width::Expr(id("FIFO_ADDR_BITS"))),
        reg("fifo_count", Width::Expr(add(id("FIFO_ADDR_BITS"), int(1)))),
        wire("core_in_ready", 1),
        wire("window_beat", 1),
        assign("window_beat", lt(id("in_beat"), id("WINDOW_BEATS"))),
        Item::Comment(
            "A window beat may overwrite the window buffer only when the core has taken (or takes now) the previous window.".into(),
        ),
        wire("win_free", 1),
        assign("win_free", or(not(id("desc_valid")), id("core_in_ready"))),
        wire("fifo_space", 1),
        assign("fifo_space", lt(id("fifo_count"), id("FIFO_DEPTH"))),
        assign(
            "ib_ready",
            and(id("fifo_space"), or(not(id("window_beat")), id("win_free"))),
        ),
        wire("ib_fire", 1),
        assign("ib_fire", and(id("ib_valid"), id("ib_ready"))),
        wire("window_done", 1),
        assign(
            "window_done",
            and(
                and(id("ib_fire"), id("window_beat")),
                or(
                    id("ib_last"),
                    eq(id("in_beat"), bin(BinOp::Sub, id("WINDOW_BEATS"), int(1))),
                ),
            ),
        ),
        wire("core_fire", 1),
        assign("core_fire", and(id("desc_valid"), id("core_in_ready"))),
        wire("fifo_head", Width::Expr(id("FIFO_WIDTH"))),
        assign("fifo_head", Expr::index("fifo", id("fifo_rd"))),
        wire("head_data", dw()),
        assign("head_data", part("fifo_head", int(0), id("DATA_WIDTH"))),
        wire("head_last", 1),
        assign("head_last", Expr::index("fifo_head", id("DATA_WIDTH"))),
        wire("head_src", 16),
        assign("head_src", part("fifo_head", dw_plus(1), int(16))),
    ]);

    // The core and its control port.
    items.push(Item::Comment("The pipeline core.".into()));
    let core_outputs = [
        ("core_out_valid", 1u32),
        ("core_retval", 64),
        ("core_window", window_bits),
        ("core_len", 16),
        ("core_rkind", 64),
        ("core_rkey", 64),
        ("core_rvalue", rvalue_bits),
        ("ctl_rdata", row_bits),
    ];
    for (n, w) in core_outputs {
        items.push(wire(n, w));
    }
    items.extend([
        wire("eg_finish", 1),
        reg("ctl_mem_q", CTL_MEM_BITS),
        reg("ctl_row_q", CTL_ROW_BITS),
        reg("ctl_we_q", 1),
        reg("axil_buf", Width::Expr(mul(id("DATA_WORDS"), int(32)))),
    ]);
    let mut conn: Vec<(String, Expr)> = vec![
        ("clk".into(), id("clk")),
        ("rst".into(), id("rst")),
        ("in_valid".into(), id("desc_valid")),
        ("in_ready".into(), id("core_in_ready")),
    ];
    for i in Input::ALL {
        let e = match i {
            Input::Window => Expr::slice("win_buf", window_bits - 1, 0),
            Input::Length => id("desc_len"),
            Input::IngressIfindex => Expr::Concat(vec![Expr::lit(16, 0), id("desc_src")]),
            Input::RxQueue => Expr::lit(32, 0),
        };
        conn.push((input_port(i), e));
    }
    conn.push(("out_valid".into(), id("core_out_valid")));
    conn.push(("out_ready".into(), id("eg_finish")));
    for o in Output::ALL {
        let n = match o {
            Output::Retval => "core_retval",
            Output::Window => "core_window",
            Output::Length => "core_len",
            Output::RedirectKind => "core_rkind",
            Output::RedirectKey => "core_rkey",
            Output::RedirectValue => "core_rvalue",
        };
        conn.push((output_port(o), id(n)));
    }
    conn.extend([
        ("ctl_mem".into(), id("ctl_mem_q")),
        ("ctl_row".into(), id("ctl_row_q")),
        ("ctl_we".into(), id("ctl_we_q")),
        ("ctl_wdata".into(), Expr::slice("axil_buf", row_bits - 1, 0)),
        ("ctl_rdata".into(), id("ctl_rdata")),
    ]);
    items.push(Item::Instance {
        module: core_name(block),
        name: "core".into(),
        params: vec![],
        connections: conn,
    });

    // Egress.
    items.push(Item::Comment(
        "Egress: the verdict at the core's output decides whether the packet's FIFO beats leave or are discarded.".into(),
    ));
    let dst_from_value = if rvalue_bits >= 16 {
        Expr::slice("core_rvalue", 15, 0)
    } else {
        Expr::Concat(vec![
            Expr::lit(16 - rvalue_bits, 0),
            Expr::slice("core_rvalue", rvalue_bits - 1, 0),
        ])
    };
    items.extend([
        wire("verdict", 32),
        assign("verdict", Expr::slice("core_retval", 31, 0)),
        wire("emit_pkt", 1),
        assign(
            "emit_pkt",
            and(
                bin(BinOp::Ne, id("core_len"), Expr::lit(16, 0)),
                or(
                    or(
                        eq(id("verdict"), Expr::lit(32, 2)),
                        eq(id("verdict"), Expr::lit(32, 3)),
                    ),
                    and(
                        eq(id("verdict"), Expr::lit(32, 4)),
                        bin(BinOp::Ne, id("core_rkind"), Expr::lit(64, 0)),
                    ),
                ),
            ),
        ),
        reg("eg_beat", 16),
        reg("eg_fifo_done", 1),
        reg("eg_src_q", 16),
        wire("out_beats", 32),
        assign(
            "out_beats",
            bin(
                BinOp::Div,
                bin(BinOp::Sub, add(id("core_len"), id("BEAT_BYTES")), int(1)),
                id("BEAT_BYTES"),
            ),
        ),
        wire("need_emit", 1),
        assign("need_emit", and(id("emit_pkt"), lt(id("eg_beat"), id("out_beats")))),
        wire("need_pop", 1),
        assign("need_pop", not(id("eg_fifo_done"))),
        wire("fifo_avail", 1),
        assign("fifo_avail", bin(BinOp::Ne, id("fifo_count"), int(0))),
        wire("tx_ready", 1),
        Item::Comment(
            "A control write holds the core for its cycle, so egress holds too.".into(),
        ),
        wire("eg_step", 1),
        assign(
            "eg_step",
            and(
                and(id("core_out_valid"), not(id("ctl_we_q"))),
                Expr::cond(
                    id("need_emit"),
                    and(id("tx_ready"), or(id("eg_fifo_done"), id("fifo_avail"))),
                    or(not(id("need_pop")), id("fifo_avail")),
                ),
            ),
        ),
        wire("eg_pop", 1),
        assign("eg_pop", and(id("eg_step"), id("need_pop"))),
        wire("eg_push", 1),
        assign("eg_push", and(id("eg_step"), id("need_emit"))),
        wire("eg_last", 1),
        assign(
            "eg_last",
            bin(BinOp::Ge, add(id("eg_beat"), int(1)), id("out_beats")),
        ),
        wire("fifo_done_next", 1),
        assign(
            "fifo_done_next",
            or(id("eg_fifo_done"), and(id("eg_pop"), id("head_last"))),
        ),
        assign(
            "eg_finish",
            and(
                and(id("eg_step"), id("fifo_done_next")),
                or(not(id("need_emit")), id("eg_last")),
            ),
        ),
        wire("eg_src", 16),
        assign(
            "eg_src",
            Expr::cond(
                and(eq(id("eg_beat"), int(0)), not(id("eg_fifo_done"))),
                id("head_src"),
                id("eg_src_q"),
            ),
        ),
        wire("eg_dst", 16),
        assign(
            "eg_dst",
            Expr::cond(
                eq(id("verdict"), Expr::lit(32, 2)),
                id("PASS_DST"),
                Expr::cond(
                    eq(id("verdict"), Expr::lit(32, 3)),
                    id("eg_src"),
                    Expr::cond(
                        eq(id("core_rkind"), Expr::lit(64, REDIRECT_IFINDEX)),
                        Expr::slice("core_rkey", 15, 0),
                        dst_from_value,
                    ),
                ),
            ),
        ),
        wire("eg_base", 32),
        assign("eg_base", mul(id("eg_beat"), id("BEAT_BYTES"))),
        wire("eg_win", Width::Expr(mul(id("WINDOW_BEATS"), id("DATA_WIDTH")))),
        assign("eg_win", id("core_window")),
        wire("eg_win_beat", dw()),
        assign(
            "eg_win_beat",
            Expr::cond(
                lt(id("eg_beat"), id("WINDOW_BEATS")),
                part("eg_win", mul(id("eg_beat"), id("DATA_WIDTH")), id("DATA_WIDTH")),
                int(0),
            ),
        ),
        Item::Comment(
            "Each output byte comes from the core's window, the FIFO, or is zero past the new length.".into(),
        ),
        wire("tx_data", dw()),
        wire("tx_keep", bb()),
        Item::GenerateFor {
            var: "eg_byte".into(),
            count: id("BEAT_BYTES"),
            label: "egress_bytes".into(),
            items: vec![
                Item::Assign(
                    Expr::index("tx_keep", id("eg_byte")),
                    lt(add(id("eg_base"), id("eg_byte")), id("core_len")),
                ),
                Item::Assign(
                    part("tx_data", mul(int(8), id("eg_byte")), int(8)),
                    Expr::cond(
                        not(lt(add(id("eg_base"), id("eg_byte")), id("core_len"))),
                        Expr::lit(8, 0),
                        Expr::cond(
                            lt(add(id("eg_base"), id("eg_byte")), id("WINDOW_BYTES")),
                            part("eg_win_beat", mul(int(8), id("eg_byte")), int(8)),
                            Expr::cond(
                                id("eg_fifo_done"),
                                Expr::lit(8, 0),
                                part("head_data", mul(int(8), id("eg_byte")), int(8)),
                            ),
                        ),
                    ),
                ),
            ],
        },
        wire("ob_data", Width::Expr(id("OUT_WIDTH"))),
        Item::Instance {
            module: skid_name(block),
            name: "out_skid".into(),
            params: vec![("WIDTH".into(), id("OUT_WIDTH"))],
            connections: vec![
                ("clk".into(), id("clk")),
                ("rst".into(), id("rst")),
                ("s_valid".into(), id("eg_push")),
                ("s_ready".into(), id("tx_ready")),
                (
                    "s_data".into(),
                    Expr::Concat(vec![
                        id("eg_dst"),
                        id("eg_src"),
                        id("core_len"),
                        id("eg_last"),
                        id("tx_keep"),
                        id("tx_data"),
                    ]),
                ),
                ("m_valid".into(), id("m_axis_tvalid")),
                ("m_ready".into(), id("m_axis_tready")),
                ("m_data".into(), id("ob_data")),
            ],
        },
        assign("m_axis_tdata", part("ob_data", int(0), id("DATA_WIDTH"))),
        assign("m_axis_tkeep", part("ob_data", id("DATA_WIDTH"), id("BEAT_BYTES"))),
        assign(
            "m_axis_tlast",
            Expr::index("ob_data", add(id("DATA_WIDTH"), id("BEAT_BYTES"))),
        ),
        assign(
            "m_axis_tuser_size",
            part("ob_data", add(dw_plus(1), id("BEAT_BYTES")), int(16)),
        ),
        assign(
            "m_axis_tuser_src",
            part("ob_data", add(dw_plus(17), id("BEAT_BYTES")), int(16)),
        ),
        assign(
            "m_axis_tuser_dst",
            part("ob_data", add(dw_plus(33), id("BEAT_BYTES")), int(16)),
        ),
    ]);

    // Statistics and the AXI4-Lite slave.
    let counters = ["rx_packets", "tx_packets", "drop_packets", "done_packets"];
    for c in counters {
        items.push(reg(c, 32));
    }
    items.push(Item::Comment(
        "AXI4-Lite: address and data are taken independently into holding registers (every ready is a register); a write happens once both are held.".into(),
    ));
    items.extend([
        reg("aw_full", 1),
        reg("aw_addr_q", 12),
        reg("w_full", 1),
        reg("w_data_q", 32),
        reg("bvalid_q", 1),
        reg("ar_full", 1),
        reg("ar_addr_q", 12),
        reg("rvalid_q", 1),
        reg("rdata_q", 32),
        assign("s_axil_awready", Expr::bit_not(id("aw_full"))),
        assign("s_axil_wready", Expr::bit_not(id("w_full"))),
        assign("s_axil_bvalid", id("bvalid_q")),
        assign("s_axil_bresp", Expr::lit(2, 0)),
        assign("s_axil_arready", Expr::bit_not(id("ar_full"))),
        assign("s_axil_rvalid", id("rvalid_q")),
        assign("s_axil_rdata", id("rdata_q")),
        assign("s_axil_rresp", Expr::lit(2, 0)),
        wire("do_write", 1),
        assign(
            "do_write",
            and(and(id("aw_full"), id("w_full")), not(id("bvalid_q"))),
        ),
        wire("do_read", 1),
        assign("do_read", and(id("ar_full"), not(id("rvalid_q")))),
        Item::Comment(
            "The row buffer's words sit at 0x800 + 4i: bits 10..2 of the address are i.".into(),
        ),
        wire("rd_word", 9),
        assign("rd_word", Expr::slice("ar_addr_q", 10, 2)),
        wire("wr_word", 9),
        assign("wr_word", Expr::slice("aw_addr_q", 10, 2)),
    ]);
    // The read multiplexer, as a chain of conditions from the last register to the first.
    let reg_at = |a: u32| eq(id("ar_addr_q"), Expr::lit(12, a as u64));
    let info = ((block.window_bytes as u64 & 0xffff) << 16)
        | ((words as u64 & 0xff) << 8)
        | (block.memories.len() as u64 & 0xff);
    let mut rd = Expr::cond(
        and(
            bin(BinOp::Ge, id("ar_addr_q"), Expr::lit(12, REG_DATA as u64)),
            lt(id("rd_word"), id("DATA_WORDS")),
        ),
        part("axil_buf", mul(id("rd_word"), int(32)), int(32)),
        Expr::lit(32, 0),
    );
    for (k, m) in block.memories.iter().enumerate().rev() {
        let at = REG_MEMORY_INFO + 8 * k as u32;
        rd = Expr::cond(reg_at(at + 4), Expr::lit(32, m.row_bytes as u64), rd);
        rd = Expr::cond(reg_at(at), Expr::lit(32, m.rows as u64), rd);
    }
    let table: Vec<(u32, Expr)> = vec![
        (REG_ID, Expr::lit(32, SHELL_ID as u64)),
        (REG_INFO, Expr::lit(32, info)),
        (
            REG_MEM,
            Expr::Concat(vec![Expr::lit(32 - CTL_MEM_BITS, 0), id("ctl_mem_q")]),
        ),
        (REG_ROW, id("ctl_row_q")),
        (REG_RX_PACKETS, id("rx_packets")),
        (REG_TX_PACKETS, id("tx_packets")),
        (REG_DROP_PACKETS, id("drop_packets")),
        (REG_DONE_PACKETS, id("done_packets")),
        (REG_DATA_WIDTH, id("DATA_WIDTH")),
        (REG_CLOCK_PERIOD, id("CLOCK_PERIOD_PS")),
    ];
    for (a, v) in table.into_iter().rev() {
        rd = Expr::cond(reg_at(a), v, rd);
    }
    items.push(wire("rd_value", 32));
    items.push(assign("rd_value", rd));

    // The clocked part.
    let zero1 = || Expr::lit(1, 0);
    let one1 = || Expr::lit(1, 1);
    let mut reset = vec![
        set(id("desc_valid"), zero1()),
        set(id("in_beat"), Expr::lit(16, 0)),
        set(id("fifo_wr"), int(0)),
        set(id("fifo_rd"), int(0)),
        set(id("fifo_count"), int(0)),
        set(id("eg_beat"), Expr::lit(16, 0)),
        set(id("eg_fifo_done"), zero1()),
        set(id("aw_full"), zero1()),
        set(id("w_full"), zero1()),
        set(id("bvalid_q"), zero1()),
        set(id("ar_full"), zero1()),
        set(id("rvalid_q"), zero1()),
        set(id("ctl_we_q"), zero1()),
        set(id("ctl_mem_q"), Expr::lit(CTL_MEM_BITS, 0)),
        set(id("ctl_row_q"), Expr::lit(CTL_ROW_BITS, 0)),
        set(id("axil_buf"), int(0)),
    ];
    for c in counters {
        reset.push(set(id(c), Expr::lit(32, 0)));
    }
    let count = |c: &str, when: Expr| {
        Stmt::If(when, vec![set(id(c), add(id(c), Expr::lit(32, 1)))], vec![])
    };
    let write_to = |a: u32| eq(id("aw_addr_q"), Expr::lit(12, a as u64));
    let run = vec![
        // Ingress.
        Stmt::If(
            id("ib_fire"),
            vec![
                set(
                    id("in_beat"),
                    Expr::cond(
                        id("ib_last"),
                        Expr::lit(16, 0),
                        add(id("in_beat"), Expr::lit(16, 1)),
                    ),
                ),
                set(
                    Expr::index("fifo", id("fifo_wr")),
                    Expr::Concat(vec![id("ib_src"), id("ib_last"), id("ib_masked")]),
                ),
                set(id("fifo_wr"), add(id("fifo_wr"), int(1))),
                Stmt::If(
                    eq(id("in_beat"), Expr::lit(16, 0)),
                    vec![
                        set(id("win_buf"), id("ib_masked")),
                        set(id("desc_len"), id("ib_size")),
                        set(id("desc_src"), id("ib_src")),
                    ],
                    vec![Stmt::If(
                        id("window_beat"),
                        vec![set(
                            part(
                                "win_buf",
                                mul(id("in_beat"), id("DATA_WIDTH")),
                                id("DATA_WIDTH"),
                            ),
                            id("ib_masked"),
                        )],
                        vec![],
                    )],
                ),
            ],
            vec![],
        ),
        set(
            id("desc_valid"),
            or(
                id("window_done"),
                and(id("desc_valid"), not(id("core_fire"))),
            ),
        ),
        Stmt::If(
            id("eg_pop"),
            vec![
                set(id("fifo_rd"), add(id("fifo_rd"), int(1))),
                set(id("eg_src_q"), id("eg_src")),
            ],
            vec![],
        ),
        set(
            id("fifo_count"),
            bin(
                BinOp::Sub,
                add(id("fifo_count"), id("ib_fire")),
                id("eg_pop"),
            ),
        ),
        // Egress.
        Stmt::If(
            id("eg_finish"),
            vec![
                set(id("eg_beat"), Expr::lit(16, 0)),
                set(id("eg_fifo_done"), zero1()),
            ],
            vec![Stmt::If(
                id("eg_step"),
                vec![
                    set(id("eg_beat"), add(id("eg_beat"), id("eg_push"))),
                    set(id("eg_fifo_done"), id("fifo_done_next")),
                ],
                vec![],
            )],
        ),
        count("rx_packets", and(id("ib_fire"), id("ib_last"))),
        count("tx_packets", and(id("eg_push"), id("eg_last"))),
        count("drop_packets", and(id("eg_finish"), not(id("emit_pkt")))),
        count("done_packets", id("eg_finish")),
        // AXI4-Lite.
        Stmt::If(
            and(id("s_axil_awvalid"), not(id("aw_full"))),
            vec![
                set(id("aw_full"), one1()),
                set(id("aw_addr_q"), Expr::slice("s_axil_awaddr", 11, 0)),
            ],
            vec![],
        ),
        Stmt::If(
            and(id("s_axil_wvalid"), not(id("w_full"))),
            vec![
                set(id("w_full"), one1()),
                set(id("w_data_q"), id("s_axil_wdata")),
            ],
            vec![],
        ),
        set(id("ctl_we_q"), zero1()),
        Stmt::If(
            id("do_write"),
            vec![
                set(id("aw_full"), zero1()),
                set(id("w_full"), zero1()),
                set(id("bvalid_q"), one1()),
                Stmt::If(
                    write_to(REG_MEM),
                    vec![set(
                        id("ctl_mem_q"),
                        Expr::slice("w_data_q", CTL_MEM_BITS - 1, 0),
                    )],
                    vec![],
                ),
                Stmt::If(
                    write_to(REG_ROW),
                    vec![set(id("ctl_row_q"), id("w_data_q"))],
                    vec![],
                ),
                Stmt::If(
                    and(
                        write_to(REG_COMMAND),
                        eq(id("w_data_q"), Expr::lit(32, COMMAND_READ_ROW as u64)),
                    ),
                    vec![set(id("axil_buf"), id("ctl_rdata"))],
                    vec![],
                ),
                Stmt::If(
                    and(
                        write_to(REG_COMMAND),
                        eq(id("w_data_q"), Expr::lit(32, COMMAND_WRITE_ROW as u64)),
                    ),
                    vec![set(id("ctl_we_q"), one1())],
                    vec![],
                ),
                Stmt::If(
                    and(
                        bin(BinOp::Ge, id("aw_addr_q"), Expr::lit(12, REG_DATA as u64)),
                        lt(id("wr_word"), id("DATA_WORDS")),
                    ),
                    vec![set(
                        part("axil_buf", mul(id("wr_word"), int(32)), int(32)),
                        id("w_data_q"),
                    )],
                    vec![],
                ),
            ],
            vec![],
        ),
        Stmt::If(
            and(id("bvalid_q"), id("s_axil_bready")),
            vec![set(id("bvalid_q"), zero1())],
            vec![],
        ),
        Stmt::If(
            and(id("s_axil_arvalid"), not(id("ar_full"))),
            vec![
                set(id("ar_full"), one1()),
                set(id("ar_addr_q"), Expr::slice("s_axil_araddr", 11, 0)),
            ],
            vec![],
        ),
        Stmt::If(
            id("do_read"),
            vec![
                set(id("ar_full"), zero1()),
                set(id("rvalid_q"), one1()),
                set(id("rdata_q"), id("rd_value")),
            ],
            vec![],
        ),
        Stmt::If(
            and(id("rvalid_q"), id("s_axil_rready")),
            vec![set(id("rvalid_q"), zero1())],
            vec![],
        ),
    ];
    items.push(Item::AlwaysPosedge {
        clock: "clk".into(),
        body: vec![Stmt::If(id("rst"), reset, run)],
    });

    Ok(Module {
        name: shell_name(block),
        doc: vec![
            format!("OpenNIC-style shell of program `{}`, generated by nicc.", block.name),
            "AXI4-Stream in (s_axis_*) and out (m_axis_*) with tuser_size/src/dst as in the OpenNIC 250 MHz box;".into(),
            "AXI4-Lite (s_axil_*) reaches every map row through a mailbox (see the README for the register map).".into(),
            "Verdicts: drop and aborted packets are not sent; pass goes to PASS_DST, tx back to tuser_src, redirect to".into(),
            "the interface index found (bpf_redirect's argument, or the first 16 bits of the device map entry).".into(),
            format!(
                "The core: {} stages, window of {} bytes; rst is synchronous and active high.",
                block.stages, block.window_bytes
            ),
        ],
        params: vec![
            ("DATA_WIDTH".into(), int(512)),
            ("CLOCK_PERIOD_PS".into(), int(block.clock_period_ps as u64)),
            ("FIFO_ADDR_BITS".into(), int(9)),
            ("PASS_DST".into(), Expr::lit(16, DEFAULT_PASS_DST)),
        ],
        ports,
        items,
    })
}

/// The shell file: the skid buffer and the shell top level (the core is in its own file).
pub fn shell_verilog(block: &Block) -> Result<String, String> {
    let mut s = super::vast::module_to_string(&skid_module(block));
    s.push('\n');
    s.push_str(&super::vast::module_to_string(&shell_module(block)?));
    Ok(s)
}

/// The shell testbench (`shell_tb.v`, written by hand): one Verilog text for Verilator and
/// Icarus Verilog, told the shell's module name and bus width by the macros `NICC_SHELL` and
/// `NICC_DATA_WIDTH`.
pub const SHELL_TESTBENCH: &str = include_str!("shell_tb.v");
/// The testbench's top module under Verilator (a `clk` input driven from C++).
pub const SHELL_TESTBENCH_TOP: &str = "nicc_shell_tb";
/// The testbench's top module under Icarus Verilog (with its own clock).
pub const SHELL_TESTBENCH_CLOCKED_TOP: &str = "nicc_shell_tb_clock";
