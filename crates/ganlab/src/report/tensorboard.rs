//! TensorBoard event files (`events.out.tfevents.*`), written and read without TensorFlow.
//!
//! Format: TFRecord framing — u64 length (little endian), u32 masked CRC-32C of the length
//! bytes, the payload, u32 masked CRC-32C of the payload; mask(c) = ((c >> 15) | (c << 17)) +
//! 0xa282ead8 — around protobuf `Event` messages: wall_time = 1 (double), step = 2 (int64),
//! file_version = 3 (string, "brain.Event:2" in the first record), summary = 5 (message
//! Summary { repeated Value value = 1 }, Value { tag = 1 (string), simple_value = 2 (float) }).
//! Scalars only; grids stay PNG files in the run directory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{GanError, IoContext, Result};

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0x82F6_3B78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

fn masked(c: u32) -> u32 {
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(field: u32, b: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// One Event message: (wall_time, step, file_version or scalars).
fn event(wall_time: f64, step: i64, version: Option<&str>, scalars: &[(&str, f32)]) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(1 << 3 | 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut e);
    varint(step as u64, &mut e);
    if let Some(v) = version {
        bytes_field(3, v.as_bytes(), &mut e);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, v) in scalars {
            let mut value = Vec::new();
            bytes_field(1, tag.as_bytes(), &mut value);
            value.push(2 << 3 | 5);
            value.extend_from_slice(&v.to_le_bytes());
            bytes_field(1, &value, &mut summary);
        }
        bytes_field(5, &summary, &mut e);
    }
    e
}

/// Appends scalar summaries to one event file.
#[derive(Debug)]
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<seconds>.ganlab` (dir is created) with its
    /// file-version record.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).at(dir)?;
        let t = now();
        let path = dir.join(format!("events.out.tfevents.{}.ganlab", t as u64));
        let file = File::create(&path).at(&path)?;
        let mut w = Self {
            out: BufWriter::new(file),
            path,
        };
        w.record(&event(t, 0, Some("brain.Event:2"), &[]))?;
        Ok(w)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&masked(crc32c(&len)).to_le_bytes());
        buf.extend_from_slice(data);
        buf.extend_from_slice(&masked(crc32c(data)).to_le_bytes());
        self.out.write_all(&buf).at(&self.path)
    }

    /// Writes `scalars` (tag, value) at `step`; non-finite values are skipped.
    pub fn scalars(&mut self, step: u64, scalars: &[(&str, f64)]) -> Result<()> {
        let v: Vec<(&str, f32)> = scalars
            .iter()
            .filter(|(_, x)| x.is_finite())
            .map(|(t, x)| (*t, *x as f32))
            .collect();
        self.record(&event(now(), step as i64, None, &v))
    }

    /// Flushes to disk.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().at(&self.path)
    }
}

/// One scalar read back: (step, tag, value).
pub type Scalar = (i64, String, f32);

fn read_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// A protobuf field: (field number, wire type, payload bytes, varint value).
type Field = (u32, u8, Vec<u8>, u64);

/// The fields of a message.
fn fields(b: &[u8]) -> Option<Vec<Field>> {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let key = read_varint(b, &mut i)?;
        let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
        match wire {
            0 => out.push((field, wire, Vec::new(), read_varint(b, &mut i)?)),
            1 => {
                let s = b.get(i..i + 8)?;
                i += 8;
                out.push((field, wire, s.to_vec(), 0));
            }
            2 => {
                let n = read_varint(b, &mut i)? as usize;
                let s = b.get(i..i + n)?;
                i += n;
                out.push((field, wire, s.to_vec(), 0));
            }
            5 => {
                let s = b.get(i..i + 4)?;
                i += 4;
                out.push((field, wire, s.to_vec(), 0));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Reads every scalar of an event file, checking both CRCs of every record.
pub fn read_scalars(path: &Path) -> Result<Vec<Scalar>> {
    let b = std::fs::read(path).at(path)?;
    let bad = |m: String| GanError::Input(format!("{}: {m}", path.display()));
    let mut i = 0;
    let mut out = Vec::new();
    let mut records = 0;
    while i < b.len() {
        let head = b
            .get(i..i + 12)
            .ok_or_else(|| bad(format!("truncated record header at byte {i}")))?;
        let len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes")) as usize;
        if masked(crc32c(&head[..8])) != u32::from_le_bytes(head[8..12].try_into().expect("4")) {
            return Err(bad(format!("length CRC mismatch at byte {i}")));
        }
        let data = b
            .get(i + 12..i + 12 + len)
            .ok_or_else(|| bad(format!("truncated record at byte {i}")))?;
        let crc = b
            .get(i + 12 + len..i + 16 + len)
            .ok_or_else(|| bad(format!("truncated record CRC at byte {i}")))?;
        if masked(crc32c(data)) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(bad(format!("data CRC mismatch in record {records}")));
        }
        let ev = fields(data).ok_or_else(|| bad(format!("record {records} is not an Event")))?;
        let step = ev.iter().find(|f| f.0 == 2).map_or(0, |f| f.3 as i64);
        for (_, _, summary, _) in ev.iter().filter(|f| f.0 == 5) {
            for (_, _, value, _) in fields(summary).unwrap_or_default() {
                let vf = fields(&value).unwrap_or_default();
                let tag = vf
                    .iter()
                    .find(|f| f.0 == 1)
                    .map(|f| String::from_utf8_lossy(&f.2).into_owned());
                let v = vf
                    .iter()
                    .find(|f| f.0 == 2 && f.1 == 5)
                    .map(|f| f32::from_le_bytes(f.2[..4].try_into().expect("4 bytes")));
                if let (Some(tag), Some(v)) = (tag, v) {
                    out.push((step, tag, v));
                }
            }
        }
        records += 1;
        i += 16 + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C check value of "123456789" is 0xE3069283 (RFC 3720 / iSCSI); scalars round-trip;
    /// a flipped byte is a CRC error; the first record holds "brain.Event:2".
    #[test]
    fn crc_round_trip_and_corruption() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        let dir = std::env::temp_dir().join(format!("ganlab-tb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut w = EventWriter::create(&dir).unwrap();
        w.scalars(5, &[("loss/d", 0.5), ("T", 123.0), ("skip", f64::NAN)])
            .unwrap();
        w.scalars(10, &[("loss/d", -1.25)]).unwrap();
        w.flush().unwrap();
        let path = w.path().to_path_buf();
        let s = read_scalars(&path).unwrap();
        assert_eq!(
            s,
            vec![
                (5, "loss/d".to_string(), 0.5),
                (5, "T".to_string(), 123.0),
                (10, "loss/d".to_string(), -1.25)
            ]
        );
        let mut b = std::fs::read(&path).unwrap();
        assert!(b.windows(13).any(|w| w == b"brain.Event:2"));
        let n = b.len();
        b[n - 7] ^= 0x40;
        std::fs::write(&path, &b).unwrap();
        let e = read_scalars(&path).unwrap_err().to_string();
        assert!(e.contains("CRC mismatch"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
