//! crossbeam-channel peer of `belt bench chan` (as crossbeam's
//! benchmarks/crossbeam-channel.rs): bounded(0), bounded(1), bounded(N),
//! unbounded(), with crossbeam_channel::Select for the select cases.  A
//! Select is built once per thread and reused; a receive arm whose channel
//! disconnected is removed.

use belt_chan_peers::{main_loop, msg, time_seq, time_threads, Cap, Outcome, Tally, Work, THREADS};
use crossbeam_channel::{bounded, unbounded, Receiver, Select, Sender};

fn new(cap: Cap) -> (Sender<u64>, Receiver<u64>) {
    match cap {
        Some(n) => bounded(n),
        None => unbounded(),
    }
}

fn sender(tx: Sender<u64>, id: usize, n: usize) -> Work {
    Box::new(move |_: &mut Tally| {
        for i in 0..n {
            tx.send(msg(id, i)).expect("send failed: receivers gone");
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

fn select_receiver(rxs: Vec<Receiver<u64>>) -> Work {
    Box::new(move |t: &mut Tally| {
        let mut sel = Select::new();
        for rx in &rxs {
            sel.recv(rx);
        }
        let mut open = rxs.len();
        while open > 0 {
            let oper = sel.select();
            let i = oper.index();
            match oper.recv(&rxs[i]) {
                Ok(m) => t.add(i, m),
                Err(_) => {
                    sel.remove(i);
                    open -= 1;
                }
            }
        }
    })
}

fn select_sender(txs: Vec<Sender<u64>>, id: usize, n: usize) -> Work {
    Box::new(move |_: &mut Tally| {
        let mut sel = Select::new();
        for tx in &txs {
            sel.send(tx);
        }
        for i in 0..n {
            let oper = sel.select();
            let k = oper.index();
            oper.send(&txs[k], msg(id, i)).expect("send failed: receivers gone");
        }
    })
}

fn run(case: &str, cap: Cap, messages: usize) -> Option<Outcome> {
    let per = messages / THREADS;
    let (secs, tally, senders, per_sender) = match case {
        "seq" => {
            let (tx, rx) = new(cap);
            let (secs, tally) = time_seq(|t| {
                for i in 0..messages {
                    tx.send(msg(0, i)).expect("send failed");
                }
                for _ in 0..messages {
                    t.add(0, rx.recv().expect("recv failed"));
                }
            });
            assert!(rx.try_recv().is_err(), "seq: message left over");
            (secs, tally, 1, messages)
        }
        "spsc" => {
            let (tx, rx) = new(cap);
            let (secs, tally) = time_threads(vec![sender(tx, 0, messages), receiver(rx)]);
            (secs, tally, 1, messages)
        }
        "mpsc" | "mpmc" => {
            let (tx, rx) = new(cap);
            let receivers = if case == "mpmc" { THREADS } else { 1 };
            let mut w: Vec<Work> = (0..THREADS).map(|t| sender(tx.clone(), t, per)).collect();
            drop(tx);
            for _ in 0..receivers {
                w.push(receiver(rx.clone()));
            }
            drop(rx);
            let (secs, tally) = time_threads(w);
            (secs, tally, THREADS, per)
        }
        "select_rx" => {
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| new(cap)).unzip();
            let mut w: Vec<Work> =
                txs.into_iter().enumerate().map(|(t, tx)| sender(tx, t, per)).collect();
            w.push(select_receiver(rxs));
            let (secs, tally) = time_threads(w);
            (secs, tally, THREADS, per)
        }
        "select_both" => {
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| new(cap)).unzip();
            let mut w: Vec<Work> =
                (0..THREADS).map(|t| select_sender(txs.clone(), t, per)).collect();
            drop(txs);
            for _ in 0..THREADS {
                w.push(select_receiver(rxs.clone()));
            }
            drop(rxs);
            let (secs, tally) = time_threads(w);
            (secs, tally, THREADS, per)
        }
        _ => return None,
    };
    Some(Outcome { secs, tally, senders, per_sender })
}

fn main() {
    main_loop("crossbeam-chan", run);
}
