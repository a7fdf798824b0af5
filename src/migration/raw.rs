//! Raw BSON to parsed documents and back, without the bson crate's copies: its
//! conversion copies each embedded document or array into a buffer of its own before
//! parsing it (a modmail thread's messages copied once as a list and again each message),
//! and its serializer writes a document into one buffer and copies it into another. On a
//! Legacy Import, where every record is parsed and everything it becomes serialized, those
//! copies were a fifth of the process's CPU time (docs/benchmarks.md). The values the
//! migrations meet all the time are converted here; the rare ones (regular expressions,
//! code with scope, timestamps, DB pointers, the old binary subtype, keys with a NUL)
//! go through the bson crate, so the bytes and the errors are its own.

use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document, RawArray, RawBsonRef, RawDocument, RawDocumentBuf};

/// Binary values longer than this go through the bson crate, which decides whether they
/// can be written (16 MiB, a document's limit).
const BIG_BINARY: usize = 16 * 1024 * 1024;

/// `raw` parsed: the same [`Document`] as `Document::try_from(raw)`.
pub fn document(raw: &RawDocument) -> mongodb::bson::raw::Result<Document> {
    let mut out = Document::new();
    for el in raw {
        let (k, v) = el?;
        out.insert(k, value(v)?);
    }
    Ok(out)
}

/// A raw value parsed: the same [`Bson`] as `Bson::try_from(v.to_raw_bson())`.
pub fn value(v: RawBsonRef<'_>) -> mongodb::bson::raw::Result<Bson> {
    Ok(match v {
        RawBsonRef::Double(f) => Bson::Double(f),
        RawBsonRef::String(s) => Bson::String(s.to_string()),
        RawBsonRef::Document(d) => Bson::Document(document(d)?),
        RawBsonRef::Array(a) => Bson::Array(array(a)?),
        RawBsonRef::Boolean(b) => Bson::Boolean(b),
        RawBsonRef::Null => Bson::Null,
        RawBsonRef::Int32(i) => Bson::Int32(i),
        RawBsonRef::Int64(i) => Bson::Int64(i),
        RawBsonRef::ObjectId(o) => Bson::ObjectId(o),
        RawBsonRef::DateTime(d) => Bson::DateTime(d),
        RawBsonRef::Decimal128(d) => Bson::Decimal128(d),
        RawBsonRef::Binary(b) if b.subtype != BinarySubtype::BinaryOld => Bson::Binary(Binary {
            subtype: b.subtype,
            bytes: b.bytes.to_vec(),
        }),
        other => Bson::try_from(other.to_raw_bson())?,
    })
}

fn array(raw: &RawArray) -> mongodb::bson::raw::Result<Vec<Bson>> {
    raw.into_iter().map(|el| value(el?)).collect()
}

/// `doc` serialized: the same bytes as `RawDocumentBuf::from_document(doc)`, and its
/// error where that one fails.
pub fn to_raw(doc: &Document) -> mongodb::bson::raw::Result<RawDocumentBuf> {
    let mut out = Vec::with_capacity(256);
    write_document(&mut out, doc)?;
    RawDocumentBuf::from_bytes(out)
}

/// The bytes of `doc` appended to `out`.
fn write_document(out: &mut Vec<u8>, doc: &Document) -> mongodb::bson::raw::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    for (k, v) in doc {
        write_element(out, k, v)?;
    }
    out.push(0);
    close(out, start);
    Ok(())
}

/// Writes the length of what starts at `start` (a document, a list) into its first 4
/// bytes.
fn close(out: &mut [u8], start: usize) {
    let len = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// One element: its type, its name, its value.
fn write_element(out: &mut Vec<u8>, key: &str, v: &Bson) -> mongodb::bson::raw::Result<()> {
    if key.contains('\0') {
        return write_by_bson(out, key, v);
    }
    let head = |out: &mut Vec<u8>| {
        out.push(v.element_type() as u8);
        out.extend_from_slice(key.as_bytes());
        out.push(0);
    };
    match v {
        Bson::Double(f) => {
            head(out);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Bson::String(s) => {
            head(out);
            write_string(out, s);
        }
        Bson::Document(d) => {
            head(out);
            write_document(out, d)?;
        }
        Bson::Array(items) => {
            head(out);
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            let mut index = itoa::Buffer::new();
            for (i, item) in items.iter().enumerate() {
                write_element(out, index.format(i), item)?;
            }
            out.push(0);
            close(out, start);
        }
        Bson::Boolean(b) => {
            head(out);
            out.push(u8::from(*b));
        }
        Bson::Null | Bson::MinKey | Bson::MaxKey => head(out),
        Bson::Int32(i) => {
            head(out);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Bson::Int64(i) => {
            head(out);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Bson::ObjectId(o) => {
            head(out);
            out.extend_from_slice(&o.bytes());
        }
        Bson::DateTime(d) => {
            head(out);
            out.extend_from_slice(&d.timestamp_millis().to_le_bytes());
        }
        Bson::Decimal128(d) => {
            head(out);
            out.extend_from_slice(&d.bytes());
        }
        Bson::Binary(b) if b.subtype != BinarySubtype::BinaryOld && b.bytes.len() <= BIG_BINARY => {
            head(out);
            out.extend_from_slice(&(b.bytes.len() as i32).to_le_bytes());
            out.push(b.subtype.into());
            out.extend_from_slice(&b.bytes);
        }
        other => write_by_bson(out, key, other)?,
    }
    Ok(())
}

/// A string value: its length with the NUL, its bytes, the NUL.
fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i32 + 1).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// One element as the bson crate writes it (or fails to).
fn write_by_bson(out: &mut Vec<u8>, key: &str, v: &Bson) -> mongodb::bson::raw::Result<()> {
    let mut one = Document::new();
    one.insert(key, v.clone());
    let raw = RawDocumentBuf::from_document(&one)?;
    let bytes = raw.as_bytes();
    // Between the document's length and its closing NUL.
    out.extend_from_slice(&bytes[4..bytes.len() - 1]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;
    use mongodb::bson::{doc, DateTime, Decimal128, JavaScriptCodeWithScope, Regex, Timestamp};

    /// A value of every BSON type, nested in documents and lists.
    fn every_type() -> Document {
        let scalars = doc! {
            "double": 1.5,
            "nan": f64::NAN,
            "string": "héllo wörld",
            "empty": "",
            "with nul": "a\0b",
            "true": true,
            "false": false,
            "null": Bson::Null,
            "i32": -7i32,
            "i64": i64::MAX,
            "oid": ObjectId::from_bytes([7; 12]),
            "date": DateTime::from_millis(-62_135_596_800_000),
            "dec": Decimal128::from_bytes([3; 16]),
            "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 2, 255] },
            "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![9; 16] },
            "old": Binary { subtype: BinarySubtype::BinaryOld, bytes: vec![4, 5] },
            "user": Binary { subtype: BinarySubtype::UserDefined(0x80), bytes: vec![] },
            "regex": Regex { pattern: "^a.*b$".into(), options: "im".into() },
            "code": Bson::JavaScriptCode("x = 1".into()),
            "scoped": JavaScriptCodeWithScope { code: "y".into(), scope: doc! { "y": 2 } },
            "ts": Timestamp { time: 5, increment: 9 },
            "symbol": Bson::Symbol("sym".into()),
            "undefined": Bson::Undefined,
            "min": Bson::MinKey,
            "max": Bson::MaxKey,
        };
        let list: Vec<Bson> = scalars.values().cloned().collect();
        doc! {
            "_id": ObjectId::from_bytes([1; 12]),
            "scalars": scalars.clone(),
            "list": list.clone(),
            "nested": [ { "deeper": [ [ scalars.clone() ], list ] } ],
            "emptyDoc": {},
            "emptyList": [],
            "long": (0..1500).map(Bson::Int32).collect::<Vec<_>>(),
        }
    }

    #[test]
    fn serializes_every_type_to_the_bytes_the_bson_crate_writes() {
        let d = every_type();
        let ours = to_raw(&d).unwrap();
        let theirs = RawDocumentBuf::from_document(&d).unwrap();
        assert_eq!(ours.as_bytes(), theirs.as_bytes());
    }

    #[test]
    fn parses_every_type_to_the_document_the_bson_crate_makes() {
        let raw = RawDocumentBuf::from_document(&every_type()).unwrap();
        let ours = document(&raw).unwrap();
        let theirs = raw.to_document().unwrap();
        // NaN is not equal to itself: compare the bytes of both, serialized by bson.
        assert_eq!(
            RawDocumentBuf::from_document(&ours).unwrap().as_bytes(),
            RawDocumentBuf::from_document(&theirs).unwrap().as_bytes()
        );
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_key_with_a_nul_fails_as_the_bson_crate_fails_it() {
        let d = doc! { "ok": 1, "a\0b": 2 };
        let ours = to_raw(&d).unwrap_err().to_string();
        assert!(RawDocumentBuf::from_document(&d).is_err());
        assert!(ours.contains("a\0b") || ours.contains("null"), "{ours}");
    }

    #[test]
    fn a_malformed_record_is_an_error_not_a_panic() {
        let raw = RawDocumentBuf::from_document(&doc! { "s": "text", "n": { "x": 1 } }).unwrap();
        let mut bytes = raw.as_bytes().to_vec();
        // The string's length now runs past the end of the document.
        bytes[8] = 0x7f;
        let broken = RawDocument::from_bytes(&bytes).unwrap();
        assert!(document(broken).is_err());
        assert!(Document::try_from(broken).is_err());
    }
}
