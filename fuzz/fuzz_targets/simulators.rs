//! Any bytes as an object, with a packet cut from the same bytes: the interpreter and the IR executor run every XDP
//! program on the packet with a bounded budget. Both may fault; neither may panic or hang,
//! and where both finish they must agree.
#![no_main]

use sim::runtime::{Runtime, RuntimeConfig, XdpInput};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The whole input is the object, so corpus objects are good seeds as they are; the packet
    // is cut from the input too (after the ELF header), so mutations reach both.
    let object = data;
    let packet = data.get(64..data.len().min(64 + 128)).unwrap_or(&[]);
    let Ok(obj) = frontend::elf::read_object(object, "fuzz.o") else {
        return;
    };
    let module = frontend::lift::lift_object(&obj, &frontend::lift::LiftOptions::default()).ok();
    for (index, p) in obj.programs.iter().enumerate() {
        if p.kind != frontend::object::ProgramKind::Xdp {
            continue;
        }
        let input = XdpInput {
            packet: packet.to_vec(),
            ..XdpInput::default()
        };
        let Ok(mut rt) = Runtime::new(&obj, RuntimeConfig::default()) else {
            return;
        };
        let by_interp = sim::interp::run_xdp(&obj, index, &mut rt, &input);
        if let Some(m) = &module {
            let Ok(mut rt2) = Runtime::new(&obj, RuntimeConfig::default()) else {
                return;
            };
            let by_ir = sim::ir_exec::run_xdp_ir(m, m.programs[index].func, &mut rt2, &input);
            if let (Ok(a), Ok(b)) = (&by_interp, &by_ir) {
                assert_eq!(a.retval, b.retval, "interpreter and IR executor disagree");
                assert_eq!(a.packet, b.packet, "interpreter and IR executor disagree");
            }
        }
    }
});
