//! Rust std::sync::mpsc peer of `belt bench chan` (as crossbeam's
//! benchmarks/mpsc.rs): sync_channel(0), sync_channel(1), sync_channel(N)
//! and channel().  std's Receiver is neither Clone nor Sync and std has no
//! select, so mpmc, select_rx and select_both are "n/a".

use belt_chan_peers::{main_loop, msg, time_seq, time_threads, Cap, Outcome, Tally, Work, THREADS};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

/// Either kind of std sender, so one set of case functions covers both.
#[derive(Clone)]
enum Tx {
    Sync(SyncSender<u64>),
    Async(Sender<u64>),
}

impl Tx {
    #[inline]
    fn send(&self, m: u64) {
        let r = match self {
            Tx::Sync(s) => s.send(m),
            Tx::Async(s) => s.send(m),
        };
        r.expect("send failed: receiver gone");
    }
}

fn new(cap: Cap) -> (Tx, Receiver<u64>) {
    match cap {
        Some(n) => {
            let (tx, rx) = sync_channel(n);
            (Tx::Sync(tx), rx)
        }
        None => {
            let (tx, rx) = channel();
            (Tx::Async(tx), rx)
        }
    }
}

fn sender(tx: Tx, id: usize, n: usize) -> Work {
    Box::new(move |_: &mut Tally| {
        for i in 0..n {
            tx.send(msg(id, i));
        }
    })
}

fn receiver(rx: Receiver<u64>) -> Work {
    Box::new(move |t: &mut Tally| {
        for m in rx.iter() {
            t.add(0, m);
        }
    })
}

fn run(case: &str, cap: Cap, messages: usize) -> Option<Outcome> {
    let per = messages / THREADS;
    match case {
        "seq" => {
            let (tx, rx) = new(cap);
            let (secs, tally) = time_seq(|t| {
                for i in 0..messages {
                    tx.send(msg(0, i));
                }
                for _ in 0..messages {
                    t.add(0, rx.recv().expect("recv failed"));
                }
            });
            assert!(rx.try_recv().is_err(), "seq: message left over");
            Some(Outcome { secs, tally, senders: 1, per_sender: messages })
        }
        "spsc" => {
            let (tx, rx) = new(cap);
            let (secs, tally) = time_threads(vec![sender(tx, 0, messages), receiver(rx)]);
            Some(Outcome { secs, tally, senders: 1, per_sender: messages })
        }
        "mpsc" => {
            let (tx, rx) = new(cap);
            let mut w: Vec<Work> = (0..THREADS).map(|t| sender(tx.clone(), t, per)).collect();
            drop(tx);
            w.push(receiver(rx));
            let (secs, tally) = time_threads(w);
            Some(Outcome { secs, tally, senders: THREADS, per_sender: per })
        }
        _ => None,
    }
}

fn main() {
    main_loop("rust-mpsc-chan", run);
}
