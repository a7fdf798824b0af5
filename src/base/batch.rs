//! Look-ups by key asked at the same moment, answered by one query.
//!
//! A reconnect storm authenticates thousands of clients within seconds, and each
//! authentication looked its user up three times, one database round trip each. A
//! [`Batcher`] gathers the keys asked while its earlier queries are out and asks for them
//! all at once (`{userId: {$in: [...]}}`), a key asked twice once.
//!
//! Nothing is answered from the past: a query answers only the look-ups that were waiting
//! when it started, so a look-up sees every write finished before it was asked (a sign-out
//! included). An idle batcher makes each look-up its own query, as before.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

/// What a batch's query returns: the value of each key found (a key left out has none).
pub type Found<K, V> = anyhow::Result<HashMap<K, V>>;

/// The query answering a batch of distinct keys.
pub type Query<K, V> =
    Arc<dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = Found<K, V>> + Send>> + Send + Sync>;

type Answer<V> = oneshot::Sender<Result<Option<V>, String>>;

/// Where look-ups are sent, and the task answering them.
type Task<K, V> = (mpsc::UnboundedSender<(K, Answer<V>)>, AbortOnDropHandle<()>);

/// Gathers look-ups by key into batches of at most `most` keys, at most `at_once` queries
/// out at a time. Its task starts with the first look-up and stops when the batcher is
/// dropped.
pub struct Batcher<K, V> {
    name: &'static str,
    most: usize,
    at_once: usize,
    query: Query<K, V>,
    task: OnceLock<Task<K, V>>,
}

impl<K, V> Batcher<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// A batcher named `name` (in its errors) asking `query` for up to `most` keys at once,
    /// with up to `at_once` queries out.
    pub fn new(name: &'static str, most: usize, at_once: usize, query: Query<K, V>) -> Self {
        Self {
            name,
            most: most.max(1),
            at_once: at_once.max(1),
            query,
            task: OnceLock::new(),
        }
    }

    /// The value of `key` (`None`: the query did not find it), read by a query that started
    /// after this call.
    pub async fn get(&self, key: K) -> anyhow::Result<Option<V>> {
        let (tx, rx) = oneshot::channel();
        let (asks, _) = self.task.get_or_init(|| {
            let (asks, waiting) = mpsc::unbounded_channel();
            let task = tokio::spawn(run(waiting, self.query.clone(), self.most, self.at_once));
            (asks, AbortOnDropHandle::new(task))
        });
        asks.send((key, tx))
            .map_err(|_| anyhow::anyhow!("{}: the look-up task has stopped", self.name))?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(anyhow::anyhow!("{}: {e}", self.name)),
            Err(_) => Err(anyhow::anyhow!(
                "{}: the look-up task has stopped",
                self.name
            )),
        }
    }
}

/// Takes the look-ups waiting whenever fewer than `at_once` queries are out, and answers
/// each from its batch's query.
async fn run<K, V>(
    mut waiting: mpsc::UnboundedReceiver<(K, Answer<V>)>,
    query: Query<K, V>,
    most: usize,
    at_once: usize,
) where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let mut out = FuturesUnordered::new();
    loop {
        tokio::select! {
            ask = waiting.recv(), if out.len() < at_once => {
                let Some(first) = ask else { break };
                let mut batch = vec![first];
                let mut keys: HashSet<K> = HashSet::from([batch[0].0.clone()]);
                while keys.len() < most {
                    let Ok(next) = waiting.try_recv() else { break };
                    keys.insert(next.0.clone());
                    batch.push(next);
                }
                let asked = query(keys.into_iter().collect());
                out.push(async move {
                    match asked.await {
                        Ok(found) => {
                            for (key, answer) in batch {
                                let _ = answer.send(Ok(found.get(&key).cloned()));
                            }
                        }
                        Err(e) => {
                            let why = format!("{e:#}");
                            for (_, answer) in batch {
                                let _ = answer.send(Err(why.clone()));
                            }
                        }
                    }
                });
            }
            Some(()) = out.next(), if !out.is_empty() => {}
        }
    }
    while out.next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A store whose queries take `delay` and log the keys they were asked.
    fn store(
        values: Arc<Mutex<HashMap<u32, u32>>>,
        log: Arc<Mutex<Vec<Vec<u32>>>>,
        delay: Duration,
        fail: bool,
    ) -> Query<u32, u32> {
        Arc::new(move |keys: Vec<u32>| {
            let (values, log) = (values.clone(), log.clone());
            Box::pin(async move {
                // Read when the query starts, as a database would.
                let found: HashMap<u32, u32> = {
                    let v = values.lock().unwrap();
                    keys.iter()
                        .filter_map(|k| v.get(k).map(|x| (*k, *x)))
                        .collect()
                };
                log.lock().unwrap().push(keys);
                tokio::time::sleep(delay).await;
                if fail {
                    anyhow::bail!("the database is down");
                }
                Ok(found)
            })
        })
    }

    #[tokio::test]
    async fn a_thousand_look_ups_at_once_are_a_few_queries_each_with_its_own_answer() {
        let values = Arc::new(Mutex::new((0..500).map(|k| (k, k * 10)).collect()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let b = Batcher::new(
            "test",
            256,
            2,
            store(values, log.clone(), Duration::from_millis(20), false),
        );
        let answers = futures::future::join_all((0..1000u32).map(|i| b.get(i % 600))).await;
        for (i, a) in answers.into_iter().enumerate() {
            let k = i as u32 % 600;
            assert_eq!(a.unwrap(), (k < 500).then_some(k * 10), "key {k}");
        }
        let log = log.lock().unwrap();
        assert!(log.len() <= 6, "{} queries", log.len());
        for keys in log.iter() {
            assert!(keys.len() <= 256);
            let distinct: HashSet<&u32> = keys.iter().collect();
            assert_eq!(distinct.len(), keys.len(), "a key asked twice in one query");
        }
    }

    #[tokio::test]
    async fn one_key_asked_by_many_at_once_is_read_once_per_query() {
        let values = Arc::new(Mutex::new(HashMap::from([(7, 70)])));
        let log = Arc::new(Mutex::new(Vec::new()));
        let b = Batcher::new(
            "test",
            256,
            3,
            store(values, log.clone(), Duration::from_millis(20), false),
        );
        let answers = futures::future::join_all((0..10_000).map(|_| b.get(7))).await;
        assert!(answers.into_iter().all(|a| a.unwrap() == Some(70)));
        let log = log.lock().unwrap();
        assert!(log.len() <= 3, "{} queries for one key", log.len());
        assert!(log.iter().all(|keys| keys == &[7]));
    }

    #[tokio::test]
    async fn a_look_up_is_never_answered_by_a_query_that_started_before_it() {
        let values = Arc::new(Mutex::new(HashMap::from([(1, 0)])));
        let log = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::new(Batcher::new(
            "test",
            256,
            1,
            store(
                values.clone(),
                log.clone(),
                Duration::from_millis(100),
                false,
            ),
        ));
        let early = tokio::spawn({
            let b = b.clone();
            async move { b.get(1).await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await; // its query is out
        values.lock().unwrap().insert(1, 1); // a sign-out, say
        let late = b.get(1).await.unwrap();
        assert_eq!(early.await.unwrap().unwrap(), Some(0));
        assert_eq!(late, Some(1), "the later look-up sees the write before it");
        assert_eq!(log.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_failed_query_fails_every_look_up_of_its_batch_and_says_why() {
        let b = Batcher::new(
            "session revocations",
            256,
            1,
            store(Default::default(), Default::default(), Duration::ZERO, true),
        );
        let answers = futures::future::join_all((0..10).map(|i| b.get(i))).await;
        for a in answers {
            let e = a.unwrap_err().to_string();
            assert!(
                e.contains("session revocations") && e.contains("the database is down"),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn dropping_the_batcher_stops_its_task() {
        let b = Batcher::new(
            "test",
            8,
            1,
            store(
                Default::default(),
                Default::default(),
                Duration::ZERO,
                false,
            ),
        );
        b.get(1).await.unwrap();
        let (asks, _) = b.task.get().unwrap();
        let asks = asks.clone();
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), asks.closed())
            .await
            .expect("the task ended and dropped its receiver");
    }
}
