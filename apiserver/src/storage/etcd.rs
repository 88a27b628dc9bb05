//! The etcd v3 `Store`: conditional writes as etcd transactions, lists as ranges at a
//! revision, watches as etcd watches with `prev_kv`, compaction as etcd compaction.

/// Keys read per request of a large list.
const LIST_PAGE: usize = 500;

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Txn, TxnOp,
    TxnOpResponse, TxnResponse, WatchOptions,
};
use futures::StreamExt;

use super::{
    KeyValue, ListOptions, ListResult, Revision, Store, StoreError, WatchEvent, WatchStream,
};

/// How long one request may take before the store gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A store on an etcd cluster. Keys are used as given.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

/// Maps a client error, recognising etcd's revision errors by their messages.
fn etcd_error(e: etcd_client::Error, requested: Revision) -> StoreError {
    let text = e.to_string();
    if text.contains("required revision has been compacted") {
        // The range error does not say how far; `oldest` is refined by callers that can.
        StoreError::Compacted {
            requested,
            oldest: requested + 1,
        }
    } else if text.contains("required revision is a future revision") {
        StoreError::FutureRevision {
            requested,
            current: requested - 1,
        }
    } else {
        StoreError::Backend(format!("etcd: {text}"))
    }
}

fn backend(e: etcd_client::Error) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

/// Converts an etcd key-value.
fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|e| StoreError::Backend(format!("etcd: key is not UTF-8: {e}")))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// The smallest key above every key starting with `prefix` (`\0` for all keys, as etcd
/// spells it).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The revision in a transaction's header.
fn header_revision(resp: &TxnResponse) -> Result<Revision, StoreError> {
    resp.header()
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd: response without header".into()))
}

/// The key-value a failed transaction read in its `else` branch, if the key exists.
fn else_value(resp: &TxnResponse) -> Result<Option<KeyValue>, StoreError> {
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(get) = op {
            return get.kvs().first().map(key_value).transpose();
        }
    }
    Ok(None)
}

impl EtcdStore {
    /// Connects to the cluster and checks that it answers.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
        let mut client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| StoreError::Backend(format!("etcd: connect {endpoints:?}: {e}")))?;
        client
            .status()
            .await
            .map_err(|e| StoreError::Backend(format!("etcd: status of {endpoints:?}: {e}")))?;
        Ok(EtcdStore { client })
    }

    /// The oldest revision still available: found from the `compact_revision` a watch at
    /// revision 1 answers with.
    async fn oldest_revision(&self, requested: Revision) -> Revision {
        let probe = async {
            let options = WatchOptions::new().with_start_revision(1);
            let (_watcher, mut stream) = self
                .client
                .watch_client()
                .watch("/registry/\0compaction-probe", Some(options))
                .await
                .ok()?;
            let resp = stream.message().await.ok()??;
            (resp.compact_revision() > 0).then(|| resp.compact_revision())
        };
        match tokio::time::timeout(Duration::from_secs(2), probe).await {
            Ok(Some(rev)) => rev,
            _ => requested + 1,
        }
    }

    /// Fills in the real bounds of a revision error.
    async fn refine(&self, err: StoreError) -> StoreError {
        match err {
            StoreError::Compacted { requested, .. } => StoreError::Compacted {
                requested,
                oldest: self.oldest_revision(requested).await,
            },
            StoreError::FutureRevision { requested, current } => StoreError::FutureRevision {
                requested,
                current: self.current_revision().await.unwrap_or(current),
            },
            other => other,
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.client.kv_client().txn(txn).await.map_err(backend)
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self
            .client
            .kv_client()
            .get(key, None)
            .await
            .map_err(backend)?;
        resp.kvs().first().map(key_value).transpose()
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        let start = match opts.start_after.as_deref() {
            Some(after) if after >= prefix => {
                let mut start = after.as_bytes().to_vec();
                start.push(0);
                start
            }
            _ => prefix.as_bytes().to_vec(),
        };
        let requested = opts.revision.filter(|r| *r > 0);
        // etcd reads a limit of 0 as none, which is also what the trait means by it.
        let limit = opts.limit.filter(|n| *n > 0);
        // Large lists are read in pages pinned to one revision: a single response over the
        // gRPC message limit (4 MiB) would fail.
        let mut start = start;
        let mut revision = requested;
        let mut items = Vec::new();
        loop {
            let want = match limit {
                Some(l) => (l - items.len()).min(LIST_PAGE),
                None => LIST_PAGE,
            };
            let mut options = GetOptions::new()
                .with_range(prefix_end(prefix))
                .with_limit(want as i64);
            if let Some(rev) = revision {
                options = options.with_revision(rev);
            }
            let resp = match self
                .client
                .kv_client()
                .get(start.clone(), Some(options))
                .await
            {
                Ok(resp) => resp,
                Err(e) => return Err(self.refine(etcd_error(e, revision.unwrap_or(0))).await),
            };
            if revision.is_none() {
                revision = resp.header().map(|h| h.revision());
            }
            for kv in resp.kvs() {
                items.push(key_value(kv)?);
            }
            let more = resp.more();
            let full = limit.is_some_and(|l| items.len() >= l);
            if !more || full {
                return Ok(ListResult {
                    items,
                    revision: revision.unwrap_or(0),
                    more: limit.is_some() && more,
                });
            }
            match resp.kvs().last() {
                Some(last) => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                None => {
                    return Ok(ListResult {
                        items,
                        revision: revision.unwrap_or(0),
                        more: false,
                    });
                }
            }
        }
    }

    async fn count(&self, prefix: &str) -> Result<usize, StoreError> {
        let options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_count_only();
        let resp = self
            .client
            .kv_client()
            .get(prefix, Some(options))
            .await
            .map_err(backend)?;
        Ok(resp.count() as usize)
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists {
                key: key.to_string(),
            });
        }
        header_revision(&resp)
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        // `create_revision > 0` keeps an update of a missing key (mod_revision 0) from
        // creating it.
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            return header_revision(&resp);
        }
        Err(match else_value(&resp)? {
            None => StoreError::NotFound {
                key: key.to_string(),
            },
            Some(current) => StoreError::Conflict {
                key: key.to_string(),
                expected,
                current: Box::new(current),
            },
        })
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let mut compares = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            let revision = header_revision(&resp)?;
            for op in resp.op_responses() {
                if let TxnOpResponse::Delete(del) = op
                    && let Some(prev) = del.prev_kvs().first()
                {
                    return Ok((revision, key_value(prev)?));
                }
            }
            return Err(StoreError::Backend(format!(
                "etcd: delete of {key} returned no previous value"
            )));
        }
        Err(match (else_value(&resp)?, expected) {
            (Some(current), Some(expected)) => StoreError::Conflict {
                key: key.to_string(),
                expected,
                current: Box::new(current),
            },
            _ => StoreError::NotFound {
                key: key.to_string(),
            },
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let mut options = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_prev_key();
        if after > 0 {
            options = options.with_start_revision(after + 1);
        }
        let (watcher, stream) = self
            .client
            .watch_client()
            .watch(prefix, Some(options))
            .await
            .map_err(backend)?;
        // The watcher is kept with the stream: dropping the stream cancels the watch.
        let events = futures::stream::unfold(
            (Some((watcher, stream)), std::collections::VecDeque::new()),
            move |(mut live, mut pending)| async move {
                loop {
                    if let Some(item) = pending.pop_front() {
                        return Some((item, (live, pending)));
                    }
                    let (_, stream) = live.as_mut()?;
                    let resp = match stream.next().await {
                        Some(Ok(resp)) => resp,
                        Some(Err(e)) => {
                            return Some((Err(backend(e)), (None, pending)));
                        }
                        None => return None,
                    };
                    if resp.compact_revision() > 0 {
                        let err = StoreError::Compacted {
                            requested: after,
                            oldest: resp.compact_revision(),
                        };
                        return Some((Err(err), (None, pending)));
                    }
                    for event in resp.events() {
                        pending.push_back(watch_event(event));
                    }
                    if resp.canceled() {
                        let reason = resp.cancel_reason().to_string();
                        pending.push_back(Err(StoreError::Backend(format!(
                            "etcd: watch canceled: {reason}"
                        ))));
                        live = None;
                    }
                }
            },
        );
        Ok(Box::pin(events))
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let options = GetOptions::new().with_count_only();
        let resp = self
            .client
            .kv_client()
            .get("/", Some(options))
            .await
            .map_err(backend)?;
        resp.header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::Backend("etcd: response without header".into()))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        match self.client.kv_client().compact(revision, None).await {
            Ok(_) => Ok(()),
            Err(e) => match etcd_error(e, revision) {
                // Compacting to an already compacted point changes nothing.
                StoreError::Compacted { .. } => Ok(()),
                other => Err(self.refine(other).await),
            },
        }
    }
}

/// Converts one etcd watch event.
fn watch_event(event: &etcd_client::Event) -> Result<WatchEvent, StoreError> {
    let kv = event
        .kv()
        .ok_or_else(|| StoreError::Backend("etcd: watch event without kv".into()))?;
    let prev = event.prev_kv().map(key_value).transpose()?;
    match event.event_type() {
        EventType::Put => Ok(WatchEvent::Put {
            kv: key_value(kv)?,
            prev,
        }),
        EventType::Delete => {
            let revision = kv.mod_revision();
            let prev = match prev {
                Some(prev) => prev,
                // etcd omits prev_kv only if it was compacted away; keep the key at least.
                None => KeyValue {
                    key: key_value(kv)?.key,
                    value: Vec::new(),
                    create_revision: 0,
                    mod_revision: 0,
                },
            };
            Ok(WatchEvent::Delete { prev, revision })
        }
    }
}
