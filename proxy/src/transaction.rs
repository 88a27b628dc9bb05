//! The proxy's own record of what is in its kernel table, and the `nft -f` transactions
//! that move the table from that record to new Service rules: only the chains, sets and
//! map elements that differ are sent, and the kernel is never read back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::rules::{Element, Map, ServiceRules};
use crate::service::ServiceKey;

/// What the proxy last put in the kernel, per Service.
#[derive(Debug, Default)]
pub struct KernelModel {
    services: HashMap<ServiceKey, ServiceRules>,
    /// How many Services hold each `cluster-ips` address (external addresses may be shared).
    held_ips: HashMap<Ipv4Addr, usize>,
    /// Which Service a map key belongs to (the first to claim it).
    owners: HashMap<(Map, String), ServiceKey>,
}

/// One Service's new rules (`None`: the Service is gone).
pub type Change = (ServiceKey, Option<ServiceRules>);

/// A transaction ready to send, and what the model becomes once the kernel took it.
#[derive(Debug)]
pub struct Prepared {
    /// The `nft -f` script.
    pub script: String,
    accepted: Vec<Change>,
}

impl Prepared {
    /// Whether the transaction changes nothing.
    pub fn is_empty(&self) -> bool {
        self.script.is_empty()
    }
}

/// Commands of one transaction, grouped so that every object exists before it is
/// referenced and is unreferenced before it is deleted.
#[derive(Default)]
struct Commands {
    add_chains: BTreeSet<String>,
    add_sets: BTreeMap<String, u32>,
    flush_chains: BTreeSet<String>,
    rules: Vec<(String, Vec<String>)>,
    delete_elements: BTreeMap<Map, Vec<String>>,
    add_elements: BTreeMap<Map, Vec<String>>,
    delete_ips: Vec<Ipv4Addr>,
    add_ips: Vec<Ipv4Addr>,
    delete_chains: BTreeSet<String>,
    delete_sets: BTreeSet<String>,
}

impl KernelModel {
    /// How many Services the model holds.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether the model holds no Service.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The transaction taking the kernel from this model to `changes` in table `table`
    /// (`ip <table>`). A map key another Service already holds is left to that Service.
    pub fn prepare(&self, table: &str, changes: Vec<Change>) -> Prepared {
        let empty = ServiceRules::default();
        let mut cmd = Commands::default();
        let mut ips: HashMap<Ipv4Addr, isize> = HashMap::new();
        // Keys released by this transaction, and keys claimed by it.
        let mut released: BTreeSet<(Map, String)> = BTreeSet::new();
        let mut claimed: BTreeMap<(Map, String), ServiceKey> = BTreeMap::new();
        for (key, _) in &changes {
            for e in self.services.get(key).iter().flat_map(|o| &o.elements) {
                released.insert((e.map, e.key.clone()));
            }
        }
        let mut accepted = Vec::with_capacity(changes.len());
        for (key, new) in changes {
            let old = self.services.get(&key).unwrap_or(&empty);
            let new = new.map(|mut rules| {
                rules.elements.retain(|e| {
                    let k = (e.map, e.key.clone());
                    let owner = self.owners.get(&k);
                    let free = owner.is_none() || owner == Some(&key) || released.contains(&k);
                    match claimed.get(&k) {
                        Some(other) if other != &key => false,
                        _ if !free => {
                            tracing::warn!(service = %key, element = %e.key, map = e.map.name(), "address and port already held by another service; skipped");
                            false
                        }
                        _ => {
                            claimed.insert(k, key.clone());
                            true
                        }
                    }
                });
                rules
            });
            diff_service(&mut cmd, &mut ips, old, new.as_ref().unwrap_or(&empty));
            accepted.push((key, new));
        }
        for (ip, delta) in ips {
            let before = self.held_ips.get(&ip).copied().unwrap_or(0) as isize;
            let after = before + delta;
            if before == 0 && after > 0 {
                cmd.add_ips.push(ip);
            } else if before > 0 && after == 0 {
                cmd.delete_ips.push(ip);
            }
        }
        Prepared {
            script: cmd.render(table),
            accepted,
        }
    }

    /// Records that the kernel took `prepared`.
    pub fn commit(&mut self, prepared: Prepared) {
        for (key, new) in prepared.accepted {
            if let Some(old) = self.services.remove(&key) {
                for ip in &old.held_ips {
                    if let Some(n) = self.held_ips.get_mut(ip) {
                        *n -= 1;
                        if *n == 0 {
                            self.held_ips.remove(ip);
                        }
                    }
                }
                for e in &old.elements {
                    let k = (e.map, e.key.clone());
                    if self.owners.get(&k) == Some(&key) {
                        self.owners.remove(&k);
                    }
                }
            }
            if let Some(new) = new {
                for ip in &new.held_ips {
                    *self.held_ips.entry(*ip).or_default() += 1;
                }
                for e in &new.elements {
                    self.owners.insert((e.map, e.key.clone()), key.clone());
                }
                self.services.insert(key, new);
            }
        }
    }
}

fn diff_service(
    cmd: &mut Commands,
    ips: &mut HashMap<Ipv4Addr, isize>,
    old: &ServiceRules,
    new: &ServiceRules,
) {
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            None => {
                cmd.add_chains.insert(name.clone());
                cmd.rules.push((name.clone(), rules.clone()));
            }
            Some(before) if before != rules => {
                cmd.flush_chains.insert(name.clone());
                cmd.rules.push((name.clone(), rules.clone()));
            }
            Some(_) => {}
        }
    }
    for name in old.chains.keys() {
        if !new.chains.contains_key(name) {
            cmd.flush_chains.insert(name.clone());
            cmd.delete_chains.insert(name.clone());
        }
    }
    for (name, timeout) in &new.affinity_sets {
        if old.affinity_sets.get(name) != Some(timeout) {
            cmd.add_sets.insert(name.clone(), *timeout);
        }
    }
    for name in old.affinity_sets.keys() {
        if !new.affinity_sets.contains_key(name) {
            cmd.delete_sets.insert(name.clone());
        }
    }
    let old_elems: BTreeMap<(Map, &str), &Element> = old
        .elements
        .iter()
        .map(|e| ((e.map, e.key.as_str()), e))
        .collect();
    let new_elems: BTreeMap<(Map, &str), &Element> = new
        .elements
        .iter()
        .map(|e| ((e.map, e.key.as_str()), e))
        .collect();
    for (k, e) in &old_elems {
        if new_elems.get(k).is_none_or(|n| n.verdict != e.verdict) {
            cmd.delete_elements
                .entry(e.map)
                .or_default()
                .push(e.key.clone());
        }
    }
    for (k, e) in &new_elems {
        if old_elems.get(k).is_none_or(|o| o.verdict != e.verdict) {
            cmd.add_elements
                .entry(e.map)
                .or_default()
                .push(format!("{} : {}", e.key, e.verdict));
        }
    }
    for ip in &old.held_ips {
        *ips.entry(*ip).or_default() -= 1;
    }
    for ip in &new.held_ips {
        *ips.entry(*ip).or_default() += 1;
    }
}

impl Commands {
    fn render(self, table: &str) -> String {
        let t = format!("ip {table}");
        let mut s = String::new();
        for c in &self.add_chains {
            let _ = writeln!(s, "add chain {t} {c}");
        }
        // Affinity set names carry their timeout, so these are all new sets.
        for (name, timeout) in &self.add_sets {
            let _ = writeln!(
                s,
                "add set {t} {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
            );
        }
        for c in &self.flush_chains {
            let _ = writeln!(s, "flush chain {t} {c}");
        }
        for (chain, rules) in &self.rules {
            for r in rules {
                let _ = writeln!(s, "add rule {t} {chain} {r}");
            }
        }
        for (map, keys) in &self.delete_elements {
            let _ = writeln!(
                s,
                "delete element {t} {} {{ {} }}",
                map.name(),
                keys.join(", ")
            );
        }
        if !self.delete_ips.is_empty() {
            let _ = writeln!(
                s,
                "delete element {t} cluster-ips {{ {} }}",
                join(&self.delete_ips)
            );
        }
        for (map, elems) in &self.add_elements {
            let _ = writeln!(
                s,
                "add element {t} {} {{ {} }}",
                map.name(),
                elems.join(", ")
            );
        }
        if !self.add_ips.is_empty() {
            let _ = writeln!(
                s,
                "add element {t} cluster-ips {{ {} }}",
                join(&self.add_ips)
            );
        }
        for c in &self.delete_chains {
            let _ = writeln!(s, "delete chain {t} {c}");
        }
        for name in &self.delete_sets {
            let _ = writeln!(s, "delete set {t} {name}");
        }
        s
    }
}

fn join(ips: &[Ipv4Addr]) -> String {
    let mut v: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
    v.sort();
    v.join(", ")
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;
