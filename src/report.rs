//! The JSON shape every packet-running command prints with `--json` (`nicc run`, later
//! `nicc sim`), so that one script can compare any engine with any other.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The verdict names, in the kernel's `enum xdp_action` order.
pub const VERDICTS: [&str; 5] = ["aborted", "drop", "pass", "tx", "redirect"];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub packets: Vec<PacketResult>,
    /// Count per verdict name; every name is present, zero counts included.
    pub verdicts: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketResult {
    pub index: usize,
    pub verdict: String,
    /// The packet after the program, as hex (empty when dropped or aborted is still the bytes
    /// the program left, so that rewrites before a drop can be compared too).
    pub out_hex: String,
    /// The raw return value of the program, when it is not one of the five actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retval: Option<u64>,
    /// The redirect target, when the verdict is `redirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
    /// Why the engine could not finish this packet (a fault, a missing helper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunReport {
    pub fn new() -> RunReport {
        RunReport {
            packets: Vec::new(),
            verdicts: VERDICTS.iter().map(|v| (v.to_string(), 0)).collect(),
        }
    }

    pub fn push(&mut self, result: PacketResult) {
        *self.verdicts.entry(result.verdict.clone()).or_insert(0) += 1;
        self.packets.push(result);
    }
}
