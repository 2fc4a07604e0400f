//! Map contents as data: the JSON shape in which `nicc run --maps-in/--maps-out`, the kernel
//! oracle and the tests exchange map state.
//!
//! Keys and values are lowercase hex strings of their bytes in memory order. Entries are sorted
//! by key so that two dumps of the same state are byte-identical. Array-like maps list only the
//! entries that are not all zeroes: an absent array entry and a zeroed one are the same state,
//! and listing a million zero entries helps no one. Per-CPU maps carry one value per CPU.

use crate::object::MapType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The contents of every map of an object, by map name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapsSnapshot {
    pub maps: BTreeMap<String, MapContents>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapContents {
    #[serde(rename = "type")]
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub entries: Vec<MapEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEntry {
    pub key: String,
    /// The value, for maps that are not per-CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// One value per CPU, for per-CPU maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_cpu: Option<Vec<String>>,
}

/// Lowercase hex of a byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex (whitespace allowed between bytes, an optional `0x` prefix).
pub fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("hex string {text:?} has an odd number of digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| format!("{:?} is not a hex byte", &digits[i..i + 2]))
        })
        .collect()
}
