//! Prioritized experience replay (Schaul et al. 2016) with the archive: transitions are the
//! payloads, |TD error| is the score, proportional priorities with exponent α = 1/temperature,
//! and the lowest-priority transition leaves a full buffer. A toy chain environment and a
//! tabular Q-function keep it self-contained: `cargo run --release --example prioritized_replay`.

use exit_archive::{Archive, Config, Prioritization};

const STATES: usize = 12;

/// One transition of the chain: moving right from the last state pays 1 and restarts.
fn step(state: usize, right: bool) -> (usize, f64) {
    match (right, state + 1 == STATES) {
        (true, true) => (0, 1.0),
        (true, false) => (state + 1, 0.0),
        (false, _) => (state.saturating_sub(1), 0.0),
    }
}

fn encode(s: usize, a: usize, r: f64, s2: usize) -> Vec<u8> {
    [s as u8, a as u8, r as u8, s2 as u8].to_vec()
}

fn main() -> exit_archive::Result<()> {
    let mut cfg = Config::new(2_000);
    cfg.prioritization = Prioritization::Proportional;
    cfg.temperature = 1.0 / 0.6; // α = 0.6
    let mut buffer = Archive::new(cfg)?;
    let mut q = [[0.0f64; 2]; STATES];
    let (gamma, lr) = (0.9, 0.5);
    let mut state = 0;
    let mut x = 0x9E37_79B9_7F4A_7C15u64; // exploration noise
    for t in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let action = if x % 4 == 0 {
            (x >> 8) as usize % 2
        } else {
            usize::from(q[state][1] >= q[state][0])
        };
        let (next, reward) = step(state, action == 1);
        // New transitions enter with the largest priority seen, as in PER.
        let top = buffer.stats().score_max;
        let priority = if top.is_nan() { 1.0 } else { top.max(1e-3) };
        buffer.add(
            &[encode(state, action, reward, next).as_slice()],
            &[priority],
            None,
            None,
            t,
        )?;
        state = next;
        // Learn from a prioritized minibatch and write the new |TD errors| back.
        let ids = buffer.sample(16, t)?;
        let mut errors = Vec::with_capacity(ids.len());
        for p in buffer.get(&ids)? {
            let (s, a, r, s2) = (p[0] as usize, p[1] as usize, p[2] as f64, p[3] as usize);
            let target = r + gamma * q[s2][0].max(q[s2][1]);
            let td = target - q[s][a];
            q[s][a] += lr * td;
            errors.push(td.abs() + 1e-6);
        }
        buffer.update_scores(&ids, &errors)?;
    }
    let greedy_right = (0..STATES).filter(|&s| q[s][1] >= q[s][0]).count();
    println!(
        "after 20000 steps: {} transitions kept, greedy policy moves right in {greedy_right}/{STATES} states, Q(0, right) = {:.3}",
        buffer.len(),
        q[0][1]
    );
    assert_eq!(greedy_right, STATES, "PER should learn to walk right");
    Ok(())
}
