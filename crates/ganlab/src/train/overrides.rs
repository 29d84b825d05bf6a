//! `--set section.key=value` overrides and the optimizer defaults a partial section keeps:
//! edits of the TOML table before it is parsed, so an override is validated like the file.

use crate::error::{GanError, Result};

/// Applies `key.path=value` overrides to a parsed TOML table. The value is read as a TOML
/// value (`3`, `0.5`, `true`, `"x"`, `[1, 2]`), and as a string when it is not one
/// (`run.device=cpu`); tables on the path are created as needed.
pub fn apply_overrides(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| GanError::Input(format!("--set {set:?}: expected section.key=value")))?;
        let path: Vec<&str> = key.trim().split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(GanError::Input(format!(
                "--set {set:?}: the key must be a dotted path such as run.steps"
            )));
        }
        let value = value.trim();
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let mut cur = &mut *table;
        for (i, part) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cur.insert(part.to_string(), parsed.clone());
                break;
            }
            let next = cur
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            cur = match next {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(GanError::Input(format!(
                        "--set {set:?}: `{}` is a value, not a section",
                        path[..=i].join(".")
                    )))
                }
            };
        }
    }
    Ok(())
}

/// Fills the fields a user left out of an optimizer section (`[optim.g]`,
/// `[bridgegan.optim.d]`, …: any table that is `kind` + `lr` in `defaults`) from the
/// task's default for that section, so that `[ugatit.optim.g] lr = 5e-5` keeps U-GAT-IT's
/// weight decay and schedule rather than needing every field or falling back to generic
/// ones. Other sections are left alone: their structs take missing fields from their own
/// `Default`.
pub(super) fn fill_optimizer_defaults(user: &mut toml::Table, defaults: &toml::Table) {
    for (key, default) in defaults {
        let (Some(toml::Value::Table(u)), toml::Value::Table(d)) = (user.get_mut(key), default)
        else {
            continue;
        };
        if d.contains_key("kind") && d.contains_key("lr") {
            for (k, v) in d {
                u.entry(k).or_insert_with(|| v.clone());
            }
        } else {
            fill_optimizer_defaults(u, d);
        }
    }
}
