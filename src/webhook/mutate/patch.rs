//! The JSON Patch between the received object and the desired one.
//!
//! `json_patch::diff` alone is correct but compares arrays index by index:
//! inserting the init container at position 0 would come out as every
//! existing init container being rewritten field by field into its
//! neighbour. So the `initContainers` array is aligned first, by name, with
//! at most a few whole-element operations on the `s3-seed` entry (remove
//! extra copies, move it to the front, or add it there); the diff of the
//! aligned object then only edits that entry in place. The result is the
//! same object, with a patch a person can read in an audit log.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, MoveOperation, Patch, PatchOperation, RemoveOperation};
use serde_json::Value;

use super::CONTAINER_NAME;

const INIT_CONTAINERS: [&str; 4] = ["spec", "template", "spec", "initContainers"];

/// Operations that turn `original` into `desired`, applied in order.
pub(super) fn between(original: &Value, desired: &Value) -> Patch {
    let base = PointerBuf::from_tokens(INIT_CONTAINERS);
    let wanted_first = desired
        .pointer(base.as_str())
        .and_then(|init| init.get(0))
        .filter(|c| is_ours(c));
    let mut ops = Vec::new();
    let aligned_init = original
        .pointer(base.as_str())
        .and_then(Value::as_array)
        .map(|init| {
            let mut init = init.clone();
            align(&mut init, wanted_first, &base, &mut ops);
            init
        });
    // Clone the whole object only when the alignment changed something.
    let rest = match aligned_init {
        Some(init) if !ops.is_empty() => {
            let mut aligned = original.clone();
            if let Some(slot) = aligned.pointer_mut(base.as_str()) {
                *slot = Value::Array(init);
            }
            json_patch::diff(&aligned, desired)
        }
        _ => json_patch::diff(original, desired),
    };
    ops.extend(rest.0);
    Patch(ops)
}

/// Leave at most one `s3-seed` entry, at index 0, when `wanted` is given,
/// none otherwise; record each step as one operation.
fn align(
    init: &mut Vec<Value>,
    wanted: Option<&Value>,
    base: &PointerBuf,
    ops: &mut Vec<PatchOperation>,
) {
    let ours: Vec<usize> = init
        .iter()
        .enumerate()
        .filter(|(_, c)| is_ours(c))
        .map(|(i, _)| i)
        .collect();
    let keep = wanted.and(ours.first().copied());
    for &i in ours.iter().rev().filter(|&&i| Some(i) != keep) {
        init.remove(i);
        ops.push(PatchOperation::Remove(RemoveOperation {
            path: base.with_trailing_token(i),
        }));
    }
    match (wanted, keep) {
        (Some(_), Some(0)) | (None, _) => {}
        (Some(_), Some(i)) => {
            let entry = init.remove(i);
            init.insert(0, entry);
            ops.push(PatchOperation::Move(MoveOperation {
                from: base.with_trailing_token(i),
                path: base.with_trailing_token(0),
            }));
        }
        (Some(container), None) if !init.is_empty() => {
            init.insert(0, container.clone());
            ops.push(PatchOperation::Add(AddOperation {
                path: base.with_trailing_token(0),
                value: container.clone(),
            }));
        }
        // An empty array: the diff replaces it whole.
        (Some(_), None) => {}
    }
}

fn is_ours(container: &Value) -> bool {
    container.get("name").and_then(Value::as_str) == Some(CONTAINER_NAME)
}
