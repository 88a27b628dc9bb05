//! The cluster's DNS records, built at once from Services, EndpointSlices and Pods into an
//! immutable index that answers a query with slices of prepared records (no allocation on
//! the hot path), as the Kubernetes DNS specification lays them out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The TTL of cluster records (CoreDNS's default for the kubernetes plugin).
pub const CLUSTER_TTL: u32 = 5;
/// The schema version answered at `dns-version.<domain>` (the specification's).
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The records of one name, grouped by type.
#[derive(Debug, Default)]
struct Node {
    sets: Vec<RecordSet>,
}

#[derive(Debug)]
struct RecordSet {
    rtype: RecordType,
    records: Vec<Record>,
    /// Records for the additional section (the targets of SRV records).
    additionals: Vec<Record>,
}

impl Node {
    fn set_mut(&mut self, rtype: RecordType) -> &mut RecordSet {
        let at = match self.sets.iter().position(|s| s.rtype == rtype) {
            Some(at) => at,
            None => {
                self.sets.push(RecordSet {
                    rtype,
                    records: Vec::new(),
                    additionals: Vec::new(),
                });
                self.sets.len() - 1
            }
        };
        &mut self.sets[at]
    }

    fn set(&self, rtype: RecordType) -> Option<&RecordSet> {
        self.sets.iter().find(|s| s.rtype == rtype)
    }
}

/// What the index says about one query.
#[derive(Debug, PartialEq)]
pub enum Answer<'a> {
    /// A name of the cluster zone (or a reverse name the index holds): answered here.
    Zone {
        /// NOERROR (with or without data) or NXDOMAIN.
        rcode: ResponseCode,
        /// The answer section.
        answers: &'a [Record],
        /// The additional section.
        additionals: &'a [Record],
        /// The zone's SOA for the authority section, when there is no answer.
        soa: Option<&'a Record>,
    },
    /// Not a cluster name: for the upstream resolvers.
    NotOurs,
}

impl Answer<'_> {
    /// The CNAME target, when the answer is a CNAME to follow.
    pub fn cname_target(&self) -> Option<&Name> {
        match self {
            Answer::Zone { answers, .. } => answers.iter().find_map(|r| match r.data() {
                RData::CNAME(c) => Some(&c.0),
                _ => None,
            }),
            Answer::NotOurs => None,
        }
    }
}

/// The cluster's records at one moment.
#[derive(Debug)]
pub struct Index {
    zone: LowerName,
    soa: Record,
    names: HashMap<LowerName, Node>,
    /// Names with no records of their own but records below them (`svc.<domain>`).
    empty_non_terminals: HashSet<LowerName>,
    /// Reverse names (`in-addr.arpa`, `ip6.arpa`) the index answers PTR queries for.
    reverse: HashMap<LowerName, Vec<Record>>,
}

/// The objects an index is built from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Objects<'a> {
    /// Every Service.
    pub services: &'a [&'a Service],
    /// Every EndpointSlice.
    pub slices: &'a [&'a EndpointSlice],
    /// Every Pod.
    pub pods: &'a [&'a Pod],
}

impl Index {
    /// An index with no Services, Pods or endpoints for cluster domain `domain`.
    pub fn empty(domain: &Name) -> Index {
        Index::build(domain, Objects::default(), 1)
    }

    /// Builds the index for cluster domain `domain` from `objects`; `serial` becomes the
    /// SOA serial.
    pub fn build(domain: &Name, objects: Objects<'_>, serial: u32) -> Index {
        let mut b = Builder::new(domain, serial);
        let mut slices_by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
        for s in objects.slices {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            if let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                slices_by_service
                    .entry((ns, svc.as_str()))
                    .or_default()
                    .push(s);
            }
        }
        for svc in objects.services {
            let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
            let name = svc.metadata.name.as_deref().unwrap_or_default();
            let slices = slices_by_service
                .get(&(ns, name))
                .map(Vec::as_slice)
                .unwrap_or_default();
            b.service(ns, name, svc, slices);
        }
        for pod in objects.pods {
            b.pod(pod);
        }
        b.finish()
    }

    /// The cluster zone (`cluster.local.`).
    pub fn zone(&self) -> &LowerName {
        &self.zone
    }

    /// Answers `name` (lowercase, fully qualified) for `rtype`.
    /// Server-side search expansion for a name outside the zone with at least two labels
    /// (`web.default`): the answer records of the first of `<name>.svc.<zone>` and
    /// `<name>.<zone>` (the search-path entries every pod shares) that has data of `rtype`,
    /// renamed to the name asked, so a client whose resolver does not walk the search path
    /// for dotted names (busybox nslookup) still finds `<svc>.<ns>`.
    pub fn expand_search(&self, name: &LowerName, rtype: RecordType) -> Option<Vec<Record>> {
        if name.num_labels() < 2 || self.zone.zone_of(name) {
            return None;
        }
        let asked = Name::from(name);
        let zone = Name::from(&self.zone);
        let svc = Name::from_ascii("svc").ok()?.append_domain(&zone).ok()?;
        for suffix in [svc, zone] {
            let Ok(full) = asked.clone().append_domain(&suffix) else {
                continue;
            };
            if let Answer::Zone { answers, .. } = self.lookup(&LowerName::from(&full), rtype)
                && !answers.is_empty()
                && answers.iter().all(|r| r.record_type() == rtype)
            {
                return Some(
                    answers
                        .iter()
                        .map(|r| {
                            let mut r = r.clone();
                            r.set_name(asked.clone());
                            r
                        })
                        .collect(),
                );
            }
        }
        None
    }

    pub fn lookup(&self, name: &LowerName, rtype: RecordType) -> Answer<'_> {
        if !self.zone.zone_of(name) {
            return match (rtype, self.reverse.get(name)) {
                (RecordType::PTR, Some(records)) => Answer::Zone {
                    rcode: ResponseCode::NoError,
                    answers: records,
                    additionals: &[],
                    soa: None,
                },
                _ => Answer::NotOurs,
            };
        }
        let nodata = Answer::Zone {
            rcode: ResponseCode::NoError,
            answers: &[],
            additionals: &[],
            soa: Some(&self.soa),
        };
        let Some(node) = self.names.get(name) else {
            if self.empty_non_terminals.contains(name) {
                return nodata;
            }
            return Answer::Zone {
                rcode: ResponseCode::NXDomain,
                answers: &[],
                additionals: &[],
                soa: Some(&self.soa),
            };
        };
        // A CNAME answers every type but itself (ExternalName Services).
        let set = match rtype {
            RecordType::ANY => node.sets.first(),
            t => node.set(t).or_else(|| node.set(RecordType::CNAME)),
        };
        match set {
            Some(set) => Answer::Zone {
                rcode: ResponseCode::NoError,
                answers: &set.records,
                additionals: &set.additionals,
                soa: None,
            },
            None => nodata,
        }
    }

    /// How many names the index answers (for logs).
    pub fn len(&self) -> usize {
        self.names.len() + self.reverse.len()
    }

    /// Whether the index holds no names.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The dashed form of an address used in pod names (`10-244-0-5`, `fd00--5`).
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The reverse-lookup name of `ip` (`5.0.244.10.in-addr.arpa.`).
pub fn reverse_name(ip: IpAddr) -> Name {
    let mut n = Name::from(ip);
    n.set_fqdn(true);
    n
}

struct Builder {
    domain: Name,
    zone: LowerName,
    soa: Record,
    names: HashMap<LowerName, Node>,
    reverse: HashMap<LowerName, Vec<Record>>,
}

impl Builder {
    fn new(domain: &Name, serial: u32) -> Builder {
        let mut domain = domain.to_lowercase();
        domain.set_fqdn(true);
        let ns = name_under(&domain, &["ns", "dns"]);
        let soa = Record::from_rdata(
            domain.clone(),
            CLUSTER_TTL,
            RData::SOA(SOA::new(
                ns.clone(),
                name_under(&domain, &["hostmaster"]),
                serial,
                7200,
                1800,
                86400,
                CLUSTER_TTL,
            )),
        );
        let mut b = Builder {
            zone: LowerName::new(&domain),
            soa: soa.clone(),
            names: HashMap::new(),
            reverse: HashMap::new(),
            domain: domain.clone(),
        };
        b.add(&domain, RecordType::SOA, RData::SOA(soa_rdata(&soa)));
        b.add(&domain, RecordType::NS, RData::NS(NS(ns)));
        let version = name_under(&domain, &["dns-version"]);
        b.add(
            &version,
            RecordType::TXT,
            RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()])),
        );
        b
    }

    fn add(&mut self, name: &Name, rtype: RecordType, data: RData) {
        let record = Record::from_rdata(name.clone(), CLUSTER_TTL, data);
        let set = self
            .names
            .entry(LowerName::new(name))
            .or_default()
            .set_mut(rtype);
        if !set.records.contains(&record) {
            set.records.push(record);
        }
    }

    fn add_reverse(&mut self, ip: IpAddr, target: &Name) {
        let record = Record::from_rdata(
            reverse_name(ip),
            CLUSTER_TTL,
            RData::PTR(PTR(target.clone())),
        );
        let set = self
            .reverse
            .entry(LowerName::new(record.name()))
            .or_default();
        if !set.contains(&record) {
            set.push(record);
        }
    }

    fn add_address(&mut self, name: &Name, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.add(name, RecordType::A, RData::A(A(v4))),
            IpAddr::V6(v6) => self.add(name, RecordType::AAAA, RData::AAAA(AAAA(v6))),
        }
    }

    fn add_srv(&mut self, name: &Name, srv: SRV, targets: &[IpAddr]) {
        let target = srv.target().clone();
        self.add(name, RecordType::SRV, RData::SRV(srv));
        let set = self
            .names
            .get_mut(&LowerName::new(name))
            .and_then(|n| n.sets.iter_mut().find(|s| s.rtype == RecordType::SRV));
        if let Some(set) = set {
            for ip in targets {
                let data = match ip {
                    IpAddr::V4(v4) => RData::A(A(*v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                };
                let r = Record::from_rdata(target.clone(), CLUSTER_TTL, data);
                if !set.additionals.contains(&r) {
                    set.additionals.push(r);
                }
            }
        }
    }

    fn service(&mut self, ns: &str, name: &str, svc: &Service, slices: &[&EndpointSlice]) {
        let Some(spec) = &svc.spec else { return };
        let Ok(fqdn) = Name::from_ascii(name)
            .and_then(|n| n.append_domain(&name_under(&self.domain, &[ns, "svc"])))
        else {
            return;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec.external_name.as_deref().and_then(absolute_name) {
                self.add(&fqdn, RecordType::CNAME, RData::CNAME(CNAME(target)));
            }
            return;
        }
        let cluster_ips = cluster_ips(svc);
        if !cluster_ips.is_empty() {
            for ip in &cluster_ips {
                self.add_address(&fqdn, *ip);
                self.add_reverse(*ip, &fqdn);
            }
            for port in spec.ports.iter().flatten() {
                let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let proto = port.protocol.as_deref().unwrap_or("TCP");
                let Some(srv_name) = srv_owner(&fqdn, port_name, proto) else {
                    continue;
                };
                let Ok(number) = u16::try_from(port.port) else {
                    continue;
                };
                let srv = SRV::new(0, 100, number, fqdn.clone());
                self.add_srv(&srv_name, srv, &cluster_ips);
            }
            return;
        }
        if spec.cluster_ip.as_deref() != Some("None") {
            // No address yet (and not headless): nothing to answer.
            return;
        }
        self.headless(&fqdn, svc, slices);
    }

    fn headless(&mut self, fqdn: &Name, svc: &Service, slices: &[&EndpointSlice]) {
        let publish_unready = svc
            .spec
            .as_ref()
            .and_then(|s| s.publish_not_ready_addresses)
            .unwrap_or(false);
        // (hostname name, its addresses) of every ready endpoint, and the named ports.
        let mut endpoints: Vec<(Name, Vec<IpAddr>)> = Vec::new();
        let mut ports: Vec<(String, String, u16)> = Vec::new();
        for slice in slices {
            for p in slice.ports.iter().flatten() {
                let (Some(n), Some(num)) = (p.name.as_deref(), p.port) else {
                    continue;
                };
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                if let (false, Ok(num)) = (n.is_empty(), u16::try_from(num)) {
                    let entry = (n.to_string(), proto, num);
                    if !ports.contains(&entry) {
                        ports.push(entry);
                    }
                }
            }
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready && !publish_unready {
                    continue;
                }
                let ips: Vec<IpAddr> = ep.addresses.iter().filter_map(|a| a.parse().ok()).collect();
                let Some(first) = ips.first() else { continue };
                let label = ep
                    .hostname
                    .clone()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| dashed(*first));
                let Ok(host) = Name::from_ascii(&label).and_then(|n| n.append_domain(fqdn)) else {
                    continue;
                };
                endpoints.push((host, ips));
            }
        }
        for (host, ips) in &endpoints {
            for ip in ips {
                self.add_address(fqdn, *ip);
                self.add_address(host, *ip);
                self.add_reverse(*ip, host);
            }
        }
        let weight = u16::try_from(100 / endpoints.len().max(1))
            .unwrap_or(1)
            .max(1);
        for (port_name, proto, number) in &ports {
            let Some(srv_name) = srv_owner(fqdn, port_name, proto) else {
                continue;
            };
            for (host, ips) in &endpoints {
                let srv = SRV::new(0, weight, *number, host.clone());
                self.add_srv(&srv_name, srv, ips);
            }
        }
    }

    fn pod(&mut self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let Some(status) = &pod.status else { return };
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return;
        }
        let ips = status
            .pod_ips
            .iter()
            .flatten()
            .map(|p| p.ip.as_str())
            .chain(status.pod_ip.as_deref());
        for ip in ips {
            let Ok(ip) = ip.parse::<IpAddr>() else {
                continue;
            };
            let parent = name_under(&self.domain, &[ns, "pod"]);
            if let Ok(name) = Name::from_ascii(dashed(ip)).and_then(|n| n.append_domain(&parent)) {
                self.add_address(&name, ip);
            }
        }
    }

    fn finish(self) -> Index {
        let mut ents = HashSet::new();
        for name in self.names.keys() {
            let mut n = name.base_name();
            while self.zone.zone_of(&n) && !self.names.contains_key(&n) {
                if !ents.insert(n.clone()) {
                    break;
                }
                n = n.base_name();
            }
        }
        Index {
            zone: self.zone,
            soa: self.soa,
            names: self.names,
            empty_non_terminals: ents,
            reverse: self.reverse,
        }
    }
}

fn soa_rdata(r: &Record) -> SOA {
    match r.data() {
        RData::SOA(soa) => soa.clone(),
        _ => unreachable!("the zone record is an SOA"),
    }
}

/// `labels` (left to right) in front of `domain`.
fn name_under(domain: &Name, labels: &[&str]) -> Name {
    let mut n = domain.clone();
    for l in labels.iter().rev() {
        n = n.prepend_label(*l).unwrap_or(n.clone());
    }
    n
}

/// `_<port>._<proto>.<service fqdn>`.
fn srv_owner(fqdn: &Name, port: &str, proto: &str) -> Option<Name> {
    let proto = proto.to_ascii_lowercase();
    fqdn.prepend_label(format!("_{proto}"))
        .and_then(|n| n.prepend_label(format!("_{}", port.to_ascii_lowercase())))
        .ok()
}

/// An ExternalName as an absolute name.
fn absolute_name(s: &str) -> Option<Name> {
    let s = s.trim_end_matches('.');
    if s.is_empty() {
        return None;
    }
    let mut n = Name::from_ascii(s).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// The Service's cluster addresses (none when headless or not yet allocated).
fn cluster_ips(svc: &Service) -> Vec<IpAddr> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let listed = spec.cluster_ips.iter().flatten().map(String::as_str);
    let mut out: Vec<IpAddr> = Vec::new();
    for s in listed.chain(spec.cluster_ip.as_deref()) {
        if let Ok(ip) = s.parse::<IpAddr>()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}
