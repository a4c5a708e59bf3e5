//! What the Rust peers of `belt bench chan` share: options, the start gate
//! and clock, the per-receiver tally and the CSV output.
//!
//! Both binaries run crossbeam-channel's benchmark matrix (its benchmarks/
//! folder: seq, spsc, mpsc, mpmc, select_rx, select_both; THREADS = 4 per
//! side; one-word messages; capacities 0, 1, N = messages, unbounded) the
//! way belt's bench_chan.c does: every thread is spawned and waits at a
//! start gate; when all are there the main thread starts the clock, opens
//! the gate, joins them all and stops it.  Senders disconnect when done (dropping their Sender),
//! receivers receive until disconnected.  A message is sender << 40 |
//! sequence; receivers count, sum and check per-(channel, sender) order and
//! the totals must match exactly, or the program exits 1.
//!
//! Output: `case,cap,seconds` lines; "n/a" where a case does not apply
//! (seq at capacity 0 and 1 would block forever; std::sync::mpsc has no
//! select and no shareable receiver).
//!
//! Written for Rust 1.63 (Debian 12's rustc).

use std::process;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

pub const THREADS: usize = 4;
const SEQ_SHIFT: u32 = 40;
const SEQ_MASK: u64 = (1u64 << SEQ_SHIFT) - 1;

pub const CASES: [&str; 6] = ["seq", "spsc", "mpsc", "mpmc", "select_rx", "select_both"];
pub const CAPS: [&str; 4] = ["0", "1", "N", "unbounded"];

/// The capacity a case runs at: Some(n) bounded (0 = rendezvous), None
/// unbounded.
pub type Cap = Option<usize>;

#[inline]
pub fn msg(sender: usize, seq: usize) -> u64 {
    ((sender as u64) << SEQ_SHIFT) | seq as u64
}

/// What one receiver saw.
#[derive(Default, Clone)]
pub struct Tally {
    pub count: u64,
    pub sum: u64,
    pub reordered: u64,
    pub bad_sender: u64,
    next: [[u64; THREADS]; THREADS],
}

impl Tally {
    #[inline]
    pub fn add(&mut self, chan: usize, m: u64) {
        let sender = (m >> SEQ_SHIFT) as usize;
        let seq = m & SEQ_MASK;
        if sender >= THREADS {
            self.bad_sender += 1;
            return;
        }
        if seq < self.next[chan][sender] {
            self.reordered += 1;
        }
        self.next[chan][sender] = seq + 1;
        self.count += 1;
        self.sum += seq;
    }

    fn merge(&mut self, o: &Tally) {
        self.count += o.count;
        self.sum += o.sum;
        self.reordered += o.reordered;
        self.bad_sender += o.bad_sender;
    }
}

pub type Work = Box<dyn FnOnce(&mut Tally) + Send + 'static>;

/// The start gate: workers check in and wait for `go`; the main thread waits
/// until all have checked in, reads the clock, then opens it (a
/// std::sync::Barrier would let the workers run before the main thread
/// could read the clock).
struct Gate {
    state: Mutex<(usize, bool)>, // (arrived, go)
    cv: Condvar,
}

/// Runs the workers behind the start gate; returns the seconds from opening
/// the gate to the last join, and the merged tally.
pub fn time_threads(workers: Vec<Work>) -> (f64, Tally) {
    let n = workers.len();
    let gate = Arc::new(Gate { state: Mutex::new((0, false)), cv: Condvar::new() });
    let handles: Vec<_> = workers
        .into_iter()
        .map(|w| {
            let gate = Arc::clone(&gate);
            thread::spawn(move || {
                let mut t = Tally::default();
                {
                    let mut st = gate.state.lock().unwrap();
                    st.0 += 1;
                    gate.cv.notify_all();
                    while !st.1 {
                        st = gate.cv.wait(st).unwrap();
                    }
                }
                w(&mut t);
                t
            })
        })
        .collect();
    let t0;
    {
        let mut st = gate.state.lock().unwrap();
        while st.0 < n {
            st = gate.cv.wait(st).unwrap();
        }
        t0 = Instant::now();
        st.1 = true;
        gate.cv.notify_all();
    }
    let mut total = Tally::default();
    for h in handles {
        match h.join() {
            Ok(t) => total.merge(&t),
            Err(_) => {
                eprintln!("a benchmark thread panicked");
                process::exit(1);
            }
        }
    }
    (t0.elapsed().as_secs_f64(), total)
}

/// Times seq on the calling thread.
pub fn time_seq<F: FnOnce(&mut Tally)>(f: F) -> (f64, Tally) {
    let mut t = Tally::default();
    let t0 = Instant::now();
    f(&mut t);
    (t0.elapsed().as_secs_f64(), t)
}

/// One measured case: seconds, tally, and what it must add up to.
pub struct Outcome {
    pub secs: f64,
    pub tally: Tally,
    pub senders: usize,
    pub per_sender: usize,
}

pub struct Opts {
    pub messages: usize,
    want_case: Vec<bool>,
    want_cap: Vec<bool>,
}

fn parse_list(arg: &str, names: &[&str], what: &str, prog: &str) -> Vec<bool> {
    let mut want = vec![false; names.len()];
    for tok in arg.split(',') {
        match names.iter().position(|n| *n == tok) {
            Some(i) => want[i] = true,
            None => {
                eprintln!("{}: unknown {} '{}' (one of {})", prog, what, tok, names.join(" "));
                process::exit(2);
            }
        }
    }
    want
}

/// Parses --messages N, --case LIST, --cap LIST, --csv (the only format).
pub fn parse_args(prog: &str) -> Opts {
    let mut o = Opts {
        messages: 5_000_000,
        want_case: vec![true; CASES.len()],
        want_cap: vec![true; CAPS.len()],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let (name, inline) = match args[i].find('=') {
            Some(p) => (args[i][..p].to_string(), Some(args[i][p + 1..].to_string())),
            None => (args[i].clone(), None),
        };
        let needs_value = matches!(name.as_str(), "--messages" | "--case" | "--cap");
        let value = if needs_value {
            match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => {
                            eprintln!("{}: {} needs a value", prog, name);
                            process::exit(2);
                        }
                    }
                }
            }
        } else {
            String::new()
        };
        match name.as_str() {
            "--messages" => match value.parse::<usize>() {
                Ok(n) if n >= THREADS && (n as u64) <= SEQ_MASK => o.messages = n,
                _ => {
                    eprintln!("{}: --messages wants a number >= {}, not '{}'", prog, THREADS, value);
                    process::exit(2);
                }
            },
            "--case" => o.want_case = parse_list(&value, &CASES, "case", prog),
            "--cap" => o.want_cap = parse_list(&value, &CAPS, "cap", prog),
            "--csv" => {}
            _ => {
                eprintln!("usage: {} [--messages N] [--case LIST] [--cap LIST] [--csv]", prog);
                process::exit(2);
            }
        }
        i += 1;
    }
    o.messages -= o.messages % THREADS;
    o
}

fn check(prog: &str, label: &str, out: &Outcome) -> bool {
    let t = &out.tally;
    let per = out.per_sender as u64;
    let want = out.senders as u64 * per;
    let want_sum = out.senders as u64 * (per * (per - 1) / 2);
    let mut ok = true;
    if t.count != want {
        eprintln!("{}: {}: received {} of {} messages", prog, label, t.count, want);
        ok = false;
    } else if t.sum != want_sum {
        eprintln!("{}: {}: checksum {}, want {}", prog, label, t.sum, want_sum);
        ok = false;
    }
    if t.reordered != 0 || t.bad_sender != 0 {
        eprintln!("{}: {}: {} reordered, {} corrupt", prog, label, t.reordered, t.bad_sender);
        ok = false;
    }
    ok
}

/// Runs the selected matrix, capacity-major as crossbeam does.  `run` returns
/// None where a case does not apply to this implementation.  Exits 1 if any
/// case lost, duplicated or reordered a message.
pub fn main_loop<F>(prog: &str, run: F)
where
    F: Fn(&str, Cap, usize) -> Option<Outcome>,
{
    let o = parse_args(prog);
    let mut status = 0;
    println!("case,cap,seconds");
    for (k, cap_name) in CAPS.iter().enumerate() {
        if !o.want_cap[k] {
            continue;
        }
        let cap = match *cap_name {
            "0" => Some(0),
            "1" => Some(1),
            "N" => Some(o.messages),
            _ => None,
        };
        for (c, case) in CASES.iter().enumerate() {
            if !o.want_case[c] {
                continue;
            }
            let applies = !(*case == "seq" && matches!(cap, Some(0) | Some(1)));
            let res = if applies { run(case, cap, o.messages) } else { None };
            match res {
                None => println!("{},{},n/a", case, cap_name),
                Some(out) => {
                    if check(prog, &format!("{} cap {}", case, cap_name), &out) {
                        println!("{},{},{:.6}", case, cap_name, out.secs);
                    } else {
                        println!("{},{},FAILED", case, cap_name);
                        status = 1;
                    }
                }
            }
        }
    }
    process::exit(status);
}
