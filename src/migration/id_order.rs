//! Positions in a collection's `_id` order that hold whatever the `_id`s' BSON types.
//!
//! A migration reads each collection sorted by `_id` and checkpoints the last `_id` it
//! handled. MongoDB sorts values of different types by a fixed order of type *brackets*
//! (numbers, then strings, then objects, …, ObjectIds, …), but `{_id: {$gt: X}}` only
//! compares within `X`'s bracket. A resume filter built from `$gt` alone therefore never
//! reads the `_id`s of later brackets again. [`after`] adds every later bracket by `$type`,
//! and [`up_to`] is its exact complement (what was already read).

use mongodb::bson::{doc, Bson, Document};

/// The `$type` aliases of each bracket, in MongoDB's sort order (MinKey first, MaxKey last).
/// `_id` cannot be an array, a regular expression or undefined, but every bracket is listed
/// so the order stays the server's.
const BRACKETS: &[&[&str]] = &[
    &["minKey"],
    &["undefined", "null"],
    &["double", "int", "long", "decimal"],
    &["string", "symbol"],
    &["object"],
    &["array"],
    &["binData"],
    &["objectId"],
    &["bool"],
    &["date"],
    &["timestamp"],
    &["regex"],
    &["dbPointer"],
    &["javascript"],
    &["javascriptWithScope"],
    &["maxKey"],
];

/// The bracket of a value: its index in `BRACKETS` (MongoDB's sort order of BSON types).
pub fn bracket(b: &Bson) -> usize {
    match b {
        Bson::MinKey => 0,
        Bson::Undefined | Bson::Null => 1,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 2,
        Bson::String(_) | Bson::Symbol(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::Binary(_) => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Timestamp(_) => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::JavaScriptCodeWithScope(_) => 14,
        Bson::MaxKey => 15,
    }
}

/// How `a` and `b` compare in a collection's `_id` order, when that is certain here: values
/// of different brackets, and within a bracket ObjectIds, strings, integers, doubles, dates
/// and booleans. `None` for the rest (a caller then waits for the end of what it trails).
pub fn compare(a: &Bson, b: &Bson) -> Option<std::cmp::Ordering> {
    let (x, y) = (bracket(a), bracket(b));
    if x != y {
        return Some(x.cmp(&y));
    }
    /// Doubles represent integers exactly up to 2^53.
    const EXACT: i64 = 1 << 53;
    let int = |v: &Bson| match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        _ => None,
    };
    let float = |v: &Bson| match v {
        Bson::Double(f) => Some(*f),
        _ => int(v).filter(|i| i.abs() <= EXACT).map(|i| i as f64),
    };
    match (a, b) {
        (Bson::ObjectId(a), Bson::ObjectId(b)) => Some(a.bytes().cmp(&b.bytes())),
        (Bson::String(a), Bson::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Bson::DateTime(a), Bson::DateTime(b)) => Some(a.cmp(b)),
        (Bson::Boolean(a), Bson::Boolean(b)) => Some(a.cmp(b)),
        (Bson::Null, Bson::Null) => Some(std::cmp::Ordering::Equal),
        _ => match (int(a), int(b)) {
            (Some(i), Some(j)) => Some(i.cmp(&j)),
            _ => float(a)?.partial_cmp(&float(b)?),
        },
    }
}

fn types(range: impl Iterator<Item = usize>) -> Vec<Bson> {
    range
        .flat_map(|i| BRACKETS[i].iter().map(|t| Bson::from(*t)))
        .collect()
}

/// The filter on `_id` selecting what comes after `last` in `_id` order.
pub fn after(last: &Bson) -> Document {
    let b = bracket(last);
    let later = types(b + 1..BRACKETS.len());
    let mut or = vec![doc! { "_id": { "$gt": last.clone() } }];
    if !later.is_empty() {
        or.push(doc! { "_id": { "$type": later } });
    }
    doc! { "$or": or }
}

/// The filter on `_id` selecting `last` and what comes before it: the complement of
/// [`after`].
pub fn up_to(last: &Bson) -> Document {
    let b = bracket(last);
    let earlier = types(0..b);
    let mut or = vec![doc! { "_id": { "$lte": last.clone() } }];
    if !earlier.is_empty() {
        or.push(doc! { "_id": { "$type": earlier } });
    }
    doc! { "$or": or }
}

/// Filters selecting every `_id` of bracket `b`, each one range (or value) of the `_id`
/// index: unlike `$type`, which reads the whole collection. Empty for the brackets an
/// `_id` cannot have (arrays, regular expressions) or has not in practice (code, database
/// pointers); a caller that must see everything counts what it read.
pub fn whole_bracket(b: usize) -> Vec<Document> {
    use mongodb::bson::{oid::ObjectId, spec::BinarySubtype, Binary, DateTime, Timestamp};
    match b {
        0 => vec![doc! { "_id": Bson::MinKey }],
        1 => vec![doc! { "_id": Bson::Null }],
        // NaN sorts below every other number and equals only itself.
        2 => vec![
            doc! { "_id": { "$gte": f64::NEG_INFINITY } },
            doc! { "_id": f64::NAN },
        ],
        3 => vec![doc! { "_id": { "$gte": "" } }],
        4 => vec![doc! { "_id": { "$gte": {} } }],
        6 => vec![
            doc! { "_id": { "$gte": Binary { subtype: BinarySubtype::Generic, bytes: Vec::new() } } },
        ],
        7 => vec![doc! { "_id": { "$gte": ObjectId::from_bytes([0; 12]) } }],
        8 => vec![doc! { "_id": { "$in": [false, true] } }],
        9 => vec![doc! { "_id": { "$gte": DateTime::MIN } }],
        10 => vec![doc! { "_id": { "$gte": Timestamp { time: 0, increment: 0 } } }],
        15 => vec![doc! { "_id": Bson::MaxKey }],
        _ => Vec::new(),
    }
}

/// How many brackets there are.
pub const BRACKET_COUNT: usize = BRACKETS.len();

/// `base` narrowed by `extra` (both must hold).
pub fn and(base: Document, extra: Document) -> Document {
    if base.is_empty() {
        extra
    } else {
        doc! { "$and": [base, extra] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{oid::ObjectId, Bson};

    #[test]
    fn ids_compare_as_the_server_sorts_them_or_not_at_all() {
        use std::cmp::Ordering::*;
        let (a, b) = (ObjectId::new(), ObjectId::new());
        // Ascending in MongoDB's order, as a collection of mixed `_id`s is read.
        let sorted = [
            Bson::Null,
            Bson::Int64(-5),
            Bson::Double(-4.5),
            Bson::Int32(3),
            Bson::Double(3.5),
            Bson::Int64(1 << 40),
            Bson::String("B".into()),
            Bson::String("a".into()),
            Bson::String("é".into()),
            Bson::ObjectId(a),
            Bson::ObjectId(b),
            Bson::Boolean(false),
            Bson::Boolean(true),
            Bson::DateTime(mongodb::bson::DateTime::from_millis(0)),
        ];
        for (i, x) in sorted.iter().enumerate() {
            for (j, y) in sorted.iter().enumerate() {
                assert_eq!(compare(x, y), Some(i.cmp(&j)), "{x} against {y}");
            }
        }
        assert_eq!(compare(&Bson::Int32(7), &Bson::Int64(7)), Some(Equal));
        // What is not certain here says so.
        assert_eq!(compare(&Bson::Int64(i64::MAX), &Bson::Double(1.0)), None);
        assert_eq!(compare(&Bson::Double(f64::NAN), &Bson::Double(1.0)), None);
        let bin = |b: u8| {
            Bson::Binary(mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: vec![b],
            })
        };
        assert_eq!(compare(&bin(1), &bin(2)), None);
        assert_eq!(compare(&bin(1), &Bson::ObjectId(a)), Some(Less));
    }

    #[test]
    fn brackets_follow_the_servers_sort_order() {
        let in_order = [
            Bson::MinKey,
            Bson::Null,
            Bson::Int32(1),
            Bson::String("a".into()),
            Bson::Document(doc! {}),
            Bson::ObjectId(ObjectId::new()),
            Bson::Boolean(true),
            Bson::DateTime(mongodb::bson::DateTime::now()),
            Bson::MaxKey,
        ];
        for w in in_order.windows(2) {
            assert!(
                bracket(&w[0]) < bracket(&w[1]),
                "{:?} before {:?}",
                w[0],
                w[1]
            );
        }
        // Numbers of every type share one bracket, as they compare with each other.
        assert_eq!(bracket(&Bson::Int64(1)), bracket(&Bson::Double(0.5)));
    }

    #[test]
    fn after_adds_every_later_bracket_and_up_to_every_earlier_one() {
        let last = Bson::String("m".into());
        let a = after(&last);
        let or = a.get_array("$or").unwrap();
        assert_eq!(or[0], Bson::Document(doc! { "_id": { "$gt": "m" } }));
        let later = or[1].as_document().unwrap().get_document("_id").unwrap();
        let later = later.get_array("$type").unwrap();
        assert!(later.contains(&Bson::from("objectId")) && later.contains(&Bson::from("maxKey")));
        assert!(!later.contains(&Bson::from("int")) && !later.contains(&Bson::from("string")));
        let u = up_to(&last);
        let earlier = u.get_array("$or").unwrap()[1]
            .as_document()
            .unwrap()
            .get_document("_id")
            .unwrap()
            .get_array("$type")
            .unwrap()
            .clone();
        assert!(earlier.contains(&Bson::from("int")) && !earlier.contains(&Bson::from("objectId")));
        // The last bracket has nothing after it: `$gt` alone.
        assert_eq!(after(&Bson::MaxKey).get_array("$or").unwrap().len(), 1);
        assert_eq!(and(doc! {}, doc! { "x": 1 }), doc! { "x": 1 });
        assert_eq!(
            and(doc! { "g": 1 }, doc! { "x": 1 }),
            doc! { "$and": [{ "g": 1 }, { "x": 1 }] }
        );
    }
}
