//! The cache of upstream answers: keyed by lowercase name, type and class, kept for the
//! answer's TTL (the SOA minimum for negative answers) capped at 30 s as CoreDNS's default
//! Corefile does, served with the TTLs counted down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, Record, RecordType};

/// The longest an answer is kept.
pub const MAX_TTL: Duration = Duration::from_secs(30);
/// How long a negative answer without an SOA is kept.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// What a cached answer holds.
#[derive(Debug)]
pub struct CachedAnswer {
    /// The upstream response code (NOERROR or NXDOMAIN).
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section (without the OPT record).
    pub additionals: Vec<Record>,
    stored: Instant,
    ttl: Duration,
}

impl CachedAnswer {
    /// The cacheable part of upstream response `m` and how long it may be kept; `None` for
    /// answers not to keep (server failures, refusals).
    pub fn from_message(m: &Message, now: Instant) -> Option<CachedAnswer> {
        let rcode = m.response_code();
        if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) || m.truncated() {
            return None;
        }
        let negative = rcode == ResponseCode::NXDomain || m.answers().is_empty();
        let ttl = if negative {
            m.name_servers()
                .iter()
                .find_map(|r| match r.data() {
                    RData::SOA(soa) => {
                        Some(Duration::from_secs(u64::from(soa.minimum().min(r.ttl()))))
                    }
                    _ => None,
                })
                .unwrap_or(NEGATIVE_TTL)
        } else {
            let min = m.answers().iter().map(Record::ttl).min().unwrap_or(0);
            Duration::from_secs(u64::from(min))
        };
        let ttl = ttl.min(MAX_TTL);
        if ttl.is_zero() {
            return None;
        }
        Some(CachedAnswer {
            rcode,
            answers: m.answers().to_vec(),
            authority: m.name_servers().to_vec(),
            additionals: m.additionals().to_vec(),
            stored: now,
            ttl,
        })
    }

    /// Whether the answer is still fresh at `now`.
    fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored) < self.ttl
    }

    /// The sections with every TTL counted down to what is left at `now`.
    pub fn aged(&self, now: Instant) -> [Vec<Record>; 3] {
        let left = self
            .ttl
            .saturating_sub(now.saturating_duration_since(self.stored));
        let left = u32::try_from(left.as_secs()).unwrap_or(u32::MAX).max(1);
        let age = |rs: &[Record]| {
            rs.iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.set_ttl(r.ttl().min(left));
                    r
                })
                .collect()
        };
        [
            age(&self.answers),
            age(&self.authority),
            age(&self.additionals),
        ]
    }
}

type Key = (LowerName, RecordType, DNSClass);

/// A bounded cache of upstream answers shared by every request.
#[derive(Debug)]
pub struct AnswerCache {
    entries: Mutex<HashMap<Key, Arc<CachedAnswer>>>,
    capacity: usize,
}

impl AnswerCache {
    /// A cache of at most `capacity` answers.
    pub fn new(capacity: usize) -> AnswerCache {
        AnswerCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The fresh answer for the question, if any.
    pub fn get(
        &self,
        name: &LowerName,
        rtype: RecordType,
        class: DNSClass,
        now: Instant,
    ) -> Option<Arc<CachedAnswer>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let hit = entries.get(&(name.clone(), rtype, class))?;
        hit.fresh(now).then(|| hit.clone())
    }

    /// Keeps `answer` for the question; when full, first drops what has expired and, if
    /// that is not enough, an arbitrary half.
    pub fn put(&self, name: LowerName, rtype: RecordType, class: DNSClass, answer: CachedAnswer) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            let now = Instant::now();
            entries.retain(|_, a| a.fresh(now));
            if entries.len() >= self.capacity {
                let mut n = 0usize;
                entries.retain(|_, _| {
                    n += 1;
                    n % 2 == 0
                });
            }
        }
        entries.insert((name, rtype, class), Arc::new(answer));
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, SOA};

    use super::*;

    fn response(rcode: ResponseCode, answers: Vec<Record>, soa: Option<Record>) -> Message {
        let mut m = Message::new();
        m.set_response_code(rcode);
        m.answers_mut().extend(answers);
        m.name_servers_mut().extend(soa);
        m
    }

    fn a(ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_ascii("example.org.").unwrap(),
            ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        )
    }

    #[test]
    fn ttls_count_down_and_are_capped() {
        let t0 = Instant::now();
        let long =
            CachedAnswer::from_message(&response(ResponseCode::NoError, vec![a(3600)], None), t0)
                .unwrap();
        assert_eq!(long.ttl, MAX_TTL);
        let short =
            CachedAnswer::from_message(&response(ResponseCode::NoError, vec![a(10)], None), t0)
                .unwrap();
        let [answers, _, _] = short.aged(t0 + Duration::from_secs(4));
        assert_eq!(answers[0].ttl(), 6);
        assert!(!short.fresh(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn negative_answers_keep_the_soa_minimum_and_failures_are_not_kept() {
        let soa = Record::from_rdata(
            Name::from_ascii("org.").unwrap(),
            900,
            RData::SOA(SOA::new(Name::root(), Name::root(), 1, 1, 1, 1, 12)),
        );
        let t0 = Instant::now();
        let neg =
            CachedAnswer::from_message(&response(ResponseCode::NXDomain, vec![], Some(soa)), t0)
                .unwrap();
        assert_eq!(neg.ttl, Duration::from_secs(12));
        assert!(
            CachedAnswer::from_message(&response(ResponseCode::ServFail, vec![], None), t0)
                .is_none()
        );
        assert!(
            CachedAnswer::from_message(&response(ResponseCode::NoError, vec![a(0)], None), t0)
                .is_none()
        );
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = AnswerCache::new(4);
        let t0 = Instant::now();
        for i in 0..10 {
            let name = LowerName::from(Name::from_ascii(format!("n{i}.example.")).unwrap());
            let ans =
                CachedAnswer::from_message(&response(ResponseCode::NoError, vec![a(30)], None), t0)
                    .unwrap();
            cache.put(name, RecordType::A, DNSClass::IN, ans);
            assert!(cache.len() <= 4);
        }
        let last = LowerName::from(Name::from_ascii("n9.example.").unwrap());
        assert!(cache.get(&last, RecordType::A, DNSClass::IN, t0).is_some());
    }
}
