//! Pure read planner: groups a device's tags into as few Modbus read requests as the protocol
//! allows.
//!
//! Coalescing rule (simple and predictable): tags are sorted by table and address; a tag joins
//! the current request of its table when the hole between the request's end and the tag's first
//! address is at most `max_gap` registers (or bits), and the grown request stays within the
//! protocol limit ([`MAX_READ_REGISTERS`] registers for fc 3/4, [`MAX_READ_BITS`] bits for
//! fc 1/2). Otherwise a new request starts. Requests never span tables. Addresses in a hole are
//! read and thrown away; [`DEFAULT_MAX_GAP`] (8) keeps that waste small.
//!
//! A device with holes in its map may answer a coalesced read that crosses a hole with
//! "illegal data address". The poller then replaces that request by one request per tag
//! ([`split`]) from the next cycle on, so one unmapped address does not make its neighbours bad.

use crate::config::{ModbusTag, RegisterTable};

use crate::codec;

/// Most registers one read (fc 3, fc 4) may ask for.
pub const MAX_READ_REGISTERS: u16 = 125;
/// Most bits one read (fc 1, fc 2) may ask for.
pub const MAX_READ_BITS: u16 = 2000;
/// Unconfigured registers (or bits) the poller reads across to merge two requests.
pub const DEFAULT_MAX_GAP: u16 = 8;

/// The protocol's limit on one read of `table`.
pub fn max_read(table: RegisterTable) -> u16 {
    if table.is_bit_table() {
        MAX_READ_BITS
    } else {
        MAX_READ_REGISTERS
    }
}

/// One read request and the tags it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    pub table: RegisterTable,
    pub start: u16,
    /// Registers or bits, `1..=max_read(table)`.
    pub count: u16,
    /// Indices into the tag slice given to [`plan`], in address order.
    pub tags: Vec<usize>,
}

/// The outcome of planning: the requests, and tags that cannot be read at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub requests: Vec<ReadRequest>,
    /// Tag index and why it cannot be read (type unsupported or not allowed in its table,
    /// or the value would run past address 65535). A validated config has none.
    pub unreadable: Vec<(usize, String)>,
}

/// Registers (bits) a tag covers, or why it cannot be read.
fn tag_width(tag: &ModbusTag) -> Result<u16, String> {
    let t = tag.def.data_type;
    let Some(w) = codec::width(t) else {
        return Err(codec::CodecError::Unsupported(t).to_string());
    };
    if (t == mw_model::DataType::Bool) != tag.table.is_bit_table() {
        return Err(format!(
            "data type {t} is not allowed in table {} (bool only in coil/discrete, numbers only in holding/input)",
            tag.table
        ));
    }
    if u32::from(tag.address) + u32::from(w) > 65_536 {
        return Err(format!(
            "{t} at address {} runs past address 65535",
            tag.address
        ));
    }
    Ok(w)
}

/// Plans the reads for `tags` (see the module docs for the rule).
pub fn plan(tags: &[ModbusTag], max_gap: u16) -> Plan {
    let mut out = Plan::default();
    let mut items: Vec<(RegisterTable, u16, u16, usize)> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        match tag_width(tag) {
            Ok(w) => items.push((tag.table, tag.address, w, i)),
            Err(reason) => out.unreadable.push((i, reason)),
        }
    }
    items.sort_unstable_by_key(|&(table, addr, _, i)| (table, addr, i));

    for (table, addr, w, i) in items {
        let (start, end) = (u32::from(addr), u32::from(addr) + u32::from(w));
        if let Some(cur) = out.requests.last_mut().filter(|r| r.table == table) {
            let cur_end = u32::from(cur.start) + u32::from(cur.count);
            let new_end = cur_end.max(end);
            let fits = new_end - u32::from(cur.start) <= u32::from(max_read(table));
            if start <= cur_end + u32::from(max_gap) && fits {
                // `new_end - start` ≤ max_read, so it fits in u16.
                cur.count = u16::try_from(new_end - u32::from(cur.start)).unwrap_or(cur.count);
                cur.tags.push(i);
                continue;
            }
        }
        out.requests.push(ReadRequest {
            table,
            start: addr,
            count: w,
            tags: vec![i],
        });
    }
    out
}

/// One request per tag of `req` (the fallback after "illegal data address" on a merged read).
pub fn split(req: &ReadRequest, tags: &[ModbusTag]) -> Vec<ReadRequest> {
    req.tags
        .iter()
        .filter_map(|&i| {
            let tag = tags.get(i)?;
            let count = tag_width(tag).ok()?;
            Some(ReadRequest {
                table: req.table,
                start: tag.address,
                count,
                tags: vec![i],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WordOrder;
    use mw_model::{DataType, TagDef, TagPath};
    use proptest::prelude::*;

    fn tag(i: usize, table: RegisterTable, address: u16, t: DataType) -> ModbusTag {
        ModbusTag {
            def: TagDef::new(TagPath::new(&format!("dev/t{i}")).unwrap(), t),
            table,
            address,
            word_order: WordOrder::Abcd,
            write: None,
        }
    }

    #[test]
    fn merges_near_tags_and_splits_far_ones() {
        use RegisterTable::*;
        let tags = vec![
            tag(0, HoldingRegister, 0, DataType::F32),  // 0..2
            tag(1, HoldingRegister, 2, DataType::U16),  // 2..3 contiguous
            tag(2, HoldingRegister, 11, DataType::I16), // gap of 8 → merged
            tag(3, HoldingRegister, 21, DataType::U16), // gap of 9 → new request
            tag(4, InputRegister, 0, DataType::U16),    // other table
            tag(5, Coil, 5, DataType::Bool),
            tag(6, Coil, 14, DataType::Bool), // bit gap of 8 → merged
            tag(7, Coil, 24, DataType::Bool), // bit gap of 9 → new request
        ];
        let p = plan(&tags, DEFAULT_MAX_GAP);
        assert!(p.unreadable.is_empty());
        let got: Vec<_> = p
            .requests
            .iter()
            .map(|r| (r.table, r.start, r.count, r.tags.clone()))
            .collect();
        // Explicit expectations, table order is Coil < DiscreteInput < HoldingRegister < InputRegister.
        assert_eq!(got[0], (Coil, 5, 10, vec![5, 6]));
        assert_eq!(got[1], (Coil, 24, 1, vec![7]));
        assert_eq!(got[2], (HoldingRegister, 0, 12, vec![0, 1, 2]));
        assert_eq!(got[3], (HoldingRegister, 21, 1, vec![3]));
        assert_eq!(got[4], (InputRegister, 0, 1, vec![4]));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn register_limit_is_respected() {
        // 63 f32 tags back to back = 126 registers: one request of 124 (62 tags) and one of 2.
        let tags: Vec<_> = (0..63)
            .map(|i| {
                tag(
                    i,
                    RegisterTable::InputRegister,
                    (i * 2) as u16,
                    DataType::F32,
                )
            })
            .collect();
        let p = plan(&tags, 0);
        assert_eq!(p.requests.len(), 2);
        assert_eq!((p.requests[0].start, p.requests[0].count), (0, 124));
        assert_eq!((p.requests[1].start, p.requests[1].count), (124, 2));
    }

    #[test]
    fn bit_limit_is_respected() {
        let tags: Vec<_> = (0..2001)
            .map(|i| tag(i, RegisterTable::DiscreteInput, i as u16, DataType::Bool))
            .collect();
        let p = plan(&tags, DEFAULT_MAX_GAP);
        let got: Vec<_> = p
            .requests
            .iter()
            .map(|r| (r.start, r.count, r.tags.len()))
            .collect();
        assert_eq!(got, vec![(0, 2000, 2000), (2000, 1, 1)]);
    }

    #[test]
    fn unreadable_tags_are_reported_not_requested() {
        let tags = vec![
            tag(0, RegisterTable::HoldingRegister, 65535, DataType::U32),
            tag(1, RegisterTable::HoldingRegister, 0, DataType::Bool),
            tag(2, RegisterTable::Coil, 0, DataType::F32),
            tag(3, RegisterTable::HoldingRegister, 0, DataType::F64),
            tag(4, RegisterTable::HoldingRegister, 65535, DataType::U16),
        ];
        let p = plan(&tags, DEFAULT_MAX_GAP);
        assert_eq!(
            p.unreadable.iter().map(|u| u.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert!(
            p.unreadable[0].1.contains("runs past address 65535"),
            "{}",
            p.unreadable[0].1
        );
        assert_eq!(
            p.requests,
            vec![ReadRequest {
                table: RegisterTable::HoldingRegister,
                start: 65535,
                count: 1,
                tags: vec![4]
            }]
        );
    }

    #[test]
    fn split_makes_one_request_per_tag() {
        let tags = vec![
            tag(0, RegisterTable::HoldingRegister, 0, DataType::F32),
            tag(1, RegisterTable::HoldingRegister, 4, DataType::U16),
        ];
        let p = plan(&tags, DEFAULT_MAX_GAP);
        assert_eq!(p.requests.len(), 1);
        let s = split(&p.requests[0], &tags);
        assert_eq!(
            s.iter()
                .map(|r| (r.start, r.count, r.tags.clone()))
                .collect::<Vec<_>>(),
            vec![(0, 2, vec![0]), (4, 1, vec![1])]
        );
    }

    fn any_tag() -> impl Strategy<Value = (RegisterTable, u16, DataType)> {
        prop_oneof![
            (
                prop::sample::select(vec![RegisterTable::Coil, RegisterTable::DiscreteInput]),
                any::<u16>()
            )
                .prop_map(|(t, a)| (t, a, DataType::Bool)),
            (
                prop::sample::select(vec![
                    RegisterTable::HoldingRegister,
                    RegisterTable::InputRegister
                ]),
                prop_oneof![0u16..300, any::<u16>()],
                prop::sample::select(vec![
                    DataType::U16,
                    DataType::I16,
                    DataType::U32,
                    DataType::I32,
                    DataType::F32
                ]),
            ),
        ]
    }

    proptest! {
        #[test]
        fn every_tag_read_exactly_once_within_limits(
            specs in prop::collection::vec(any_tag(), 0..200),
            max_gap in 0u16..20,
        ) {
            // Like a validated config: registers of one table do not overlap.
            let mut tags: Vec<ModbusTag> = Vec::new();
            for &(t, a, d) in &specs {
                let cand = tag(tags.len(), t, a, d);
                let end = |x: &ModbusTag| u32::from(x.address) + u32::from(x.register_count());
                let overlaps = tags.iter().any(|o| {
                    o.table == t && u32::from(o.address) < end(&cand) && u32::from(a) < end(o)
                });
                if !overlaps {
                    tags.push(cand);
                }
            }
            let p = plan(&tags, max_gap);
            let mut seen = vec![0usize; tags.len()];
            for (i, _) in &p.unreadable {
                seen[*i] += 1;
                // only tags running past 65535 can be unreadable here
                let tg = &tags[*i];
                prop_assert!(u32::from(tg.address) + u32::from(tg.register_count()) > 65_536);
            }
            for r in &p.requests {
                prop_assert!(r.count >= 1 && r.count <= max_read(r.table), "{:?}", r);
                prop_assert!(u32::from(r.start) + u32::from(r.count) <= 65_536);
                for &i in &r.tags {
                    seen[i] += 1;
                    let tg = &tags[i];
                    prop_assert_eq!(tg.table, r.table);
                    prop_assert!(tg.address >= r.start);
                    prop_assert!(u32::from(tg.address) + u32::from(tg.register_count())
                        <= u32::from(r.start) + u32::from(r.count));
                }
                // the waste inside a request is bounded by the gap rule
                let mut covered = vec![false; usize::from(r.count)];
                for &i in &r.tags {
                    let off = usize::from(tags[i].address - r.start);
                    for c in covered.iter_mut().skip(off).take(usize::from(tags[i].register_count())) {
                        *c = true;
                    }
                }
                let mut hole = 0u16;
                for c in covered {
                    hole = if c { 0 } else { hole + 1 };
                    prop_assert!(hole <= max_gap);
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1), "each tag exactly once: {:?}", seen);
            // requests of one table never overlap
            for w in p.requests.windows(2) {
                if w[0].table == w[1].table {
                    prop_assert!(u32::from(w[0].start) + u32::from(w[0].count) <= u32::from(w[1].start));
                }
            }
        }
    }
}
