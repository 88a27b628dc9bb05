//! The request handler: cluster names from the index, every other name forwarded to the
//! upstream resolvers through the answer cache, ExternalName CNAMEs followed.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Header, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use hickory_proto::xfer::Protocol;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

use super::cache::{AnswerCache, CachedAnswer};
use super::index::{Answer, Index};
use super::metrics::DnsMetrics;
use super::upstream;

/// The index the handler answers from, replaced whole when the cluster changes; `None`
/// until the first one is built (cluster names get SERVFAIL meanwhile so clients retry).
#[derive(Debug, Default)]
pub struct SharedIndex(RwLock<Option<Arc<Index>>>);

impl SharedIndex {
    /// The current index.
    pub fn current(&self) -> Option<Arc<Index>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the index.
    pub fn set(&self, index: Index) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(index));
    }
}

/// Where names outside the cluster go.
#[derive(Debug)]
pub struct Forwarding {
    /// Upstream resolvers, asked in order.
    pub servers: Vec<SocketAddr>,
    /// How long one resolver has to answer.
    pub timeout: Duration,
    /// The answer cache.
    pub cache: AnswerCache,
}

/// The DNS request handler of one server.
pub struct ClusterDnsHandler {
    /// The zone name (lowercase) answered before the index is ready.
    pub zone: LowerName,
    /// The cluster records.
    pub index: Arc<SharedIndex>,
    /// Upstream resolution.
    pub forwarding: Arc<Forwarding>,
    /// Metrics.
    pub metrics: Arc<DnsMetrics>,
}

/// A response being put together, owned (for forwarded and followed answers).
#[derive(Default)]
struct Owned {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authority: Vec<Record>,
    additionals: Vec<Record>,
}

fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::NotImp => "NOTIMP",
        _ => "OTHER",
    }
}

impl ClusterDnsHandler {
    /// Resolves `query` upstream through the cache.
    async fn forward(&self, query: &Query) -> Owned {
        let name = LowerName::new(query.name());
        let (rtype, class) = (query.query_type(), query.query_class());
        let fw = &self.forwarding;
        if let Some(hit) = fw.cache.get(&name, rtype, class, Instant::now()) {
            self.metrics.cache(true);
            return owned(&hit, Instant::now());
        }
        self.metrics.cache(false);
        if fw.servers.is_empty() {
            return Owned {
                rcode: ResponseCode::ServFail,
                ..Owned::default()
            };
        }
        match upstream::exchange(&fw.servers, query, fw.timeout).await {
            Ok(x) => {
                self.metrics.upstream(Some(x.elapsed.as_secs_f64()));
                let now = Instant::now();
                match CachedAnswer::from_message(&x.message, now) {
                    Some(answer) => {
                        let out = owned(&answer, now);
                        fw.cache.put(name, rtype, class, answer);
                        out
                    }
                    None => {
                        let mut m = x.message;
                        Owned {
                            rcode: m.response_code(),
                            answers: m.take_answers(),
                            authority: m.take_name_servers(),
                            additionals: m.take_additionals(),
                        }
                    }
                }
            }
            Err(e) => {
                self.metrics.upstream(None);
                tracing::debug!(name = %query.name(), error = %e, "upstream resolution failed");
                Owned {
                    rcode: ResponseCode::ServFail,
                    ..Owned::default()
                }
            }
        }
    }

    /// The answer for a CNAME from the index: the CNAME, then what its target resolves to
    /// (from the index when it is a cluster name, else upstream), as resolvers expect.
    async fn follow_cname(
        &self,
        index: &Index,
        cname: &[Record],
        target: &Name,
        query: &Query,
    ) -> Owned {
        let mut out = Owned {
            answers: cname.to_vec(),
            ..Owned::default()
        };
        let target_lower = LowerName::new(target);
        match index.lookup(&target_lower, query.query_type()) {
            Answer::Zone { rcode, answers, .. } => {
                out.rcode = rcode;
                out.answers.extend(answers.iter().cloned());
            }
            Answer::NotOurs => {
                let mut q = query.clone();
                q.set_name(target.clone());
                let up = self.forward(&q).await;
                out.rcode = up.rcode;
                out.answers.extend(up.answers);
                out.authority = up.authority;
            }
        }
        out
    }
}

fn owned(answer: &CachedAnswer, now: Instant) -> Owned {
    let [answers, authority, additionals] = answer.aged(now);
    Owned {
        rcode: answer.rcode,
        answers,
        authority,
        additionals,
    }
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDnsHandler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let protocol = match request.protocol() {
            Protocol::Tcp => "tcp",
            _ => "udp",
        };
        self.metrics.query(protocol);
        let mut header = Header::response_from_request(request.header());
        header.set_recursion_available(true);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if request.edns().is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            builder.edns(edns);
        }
        let query = match request.request_info() {
            Ok(info)
                if request.message_type() == MessageType::Query
                    && request.op_code() == OpCode::Query =>
            {
                info.query
            }
            Ok(_) => {
                return self
                    .fail(response, builder, header, ResponseCode::NotImp)
                    .await;
            }
            Err(_) => {
                return self
                    .fail(response, builder, header, ResponseCode::FormErr)
                    .await;
            }
        };
        let index = self.index.current();
        let Some(index) = index else {
            let rcode = if self.zone.zone_of(query.name()) {
                ResponseCode::ServFail
            } else {
                // Outside names need no index.
                let up = self.forward(query.original()).await;
                return self
                    .send_owned(response, builder, header, up, "upstream")
                    .await;
            };
            return self.fail(response, builder, header, rcode).await;
        };
        match index.lookup(query.name(), query.query_type()) {
            Answer::Zone {
                rcode,
                answers,
                additionals,
                soa,
            } => {
                let target = (query.query_type() != RecordType::CNAME)
                    .then(|| {
                        Answer::Zone {
                            rcode,
                            answers,
                            additionals,
                            soa,
                        }
                        .cname_target()
                        .cloned()
                    })
                    .flatten();
                if let Some(target) = target {
                    let out = self
                        .follow_cname(&index, answers, &target, query.original())
                        .await;
                    header.set_authoritative(true);
                    return self
                        .send_owned(response, builder, header, out, "cluster")
                        .await;
                }
                header.set_authoritative(true);
                header.set_response_code(rcode);
                let msg = builder.build(
                    header,
                    answers.iter(),
                    std::iter::empty(),
                    soa,
                    additionals.iter(),
                );
                self.metrics.response(rcode_label(rcode), "cluster");
                send(&mut response, msg, header).await
            }
            Answer::NotOurs => {
                if let Some(answers) = index.expand_search(query.name(), query.query_type()) {
                    header.set_authoritative(true);
                    header.set_response_code(ResponseCode::NoError);
                    let msg = builder.build(
                        header,
                        answers.iter(),
                        std::iter::empty(),
                        std::iter::empty(),
                        std::iter::empty(),
                    );
                    self.metrics
                        .response(rcode_label(ResponseCode::NoError), "cluster");
                    return send(&mut response, msg, header).await;
                }
                let up = self.forward(query.original()).await;
                self.send_owned(response, builder, header, up, "upstream")
                    .await
            }
        }
    }
}

impl ClusterDnsHandler {
    async fn fail<R: ResponseHandler>(
        &self,
        mut response: R,
        builder: MessageResponseBuilder<'_>,
        mut header: Header,
        rcode: ResponseCode,
    ) -> ResponseInfo {
        header.set_response_code(rcode);
        self.metrics.response(rcode_label(rcode), "cluster");
        let msg = builder.build_no_records(header);
        send(&mut response, msg, header).await
    }

    async fn send_owned<R: ResponseHandler>(
        &self,
        mut response: R,
        builder: MessageResponseBuilder<'_>,
        mut header: Header,
        out: Owned,
        source: &'static str,
    ) -> ResponseInfo {
        header.set_response_code(out.rcode);
        self.metrics.response(rcode_label(out.rcode), source);
        let msg = builder.build(
            header,
            out.answers.iter(),
            std::iter::empty(),
            out.authority.iter(),
            out.additionals.iter(),
        );
        send(&mut response, msg, header).await
    }
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    msg: hickory_server::authority::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    header: Header,
) -> ResponseInfo {
    match response.send_response(msg).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "sending a DNS response failed");
            let mut h = header;
            h.set_response_code(ResponseCode::ServFail);
            h.into()
        }
    }
}
