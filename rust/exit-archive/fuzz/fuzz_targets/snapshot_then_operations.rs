//! A fuzzed snapshot (its checksum recomputed, so that validation is reached), then
//! operations on whatever loads: add (with parents among the kept lineage, embeddings of the
//! archive's width or of a wrong length), sample, update, remove, forget, save and load. No
//! input may panic; the archive must stay consistent and counters must never move back.
#![no_main]

use exit_archive::{Archive, Id};
use libfuzzer_sys::fuzz_target;

/// Bytes of operations before the snapshot.
const OPS: usize = 16;

fuzz_target!(|data: &[u8]| {
    if data.len() < OPS + 12 {
        return;
    }
    let (ops, file) = data.split_at(OPS);
    let mut file = file.to_vec();
    let body = file.len() - 12;
    let crc = crc32fast::hash(&file[..body]);
    file[body..body + 4].copy_from_slice(&crc.to_le_bytes());
    let len = file.len() as u64;
    file[body + 4..].copy_from_slice(&len.to_le_bytes());
    let Ok(mut a) = Archive::from_bytes(&file) else {
        return;
    };
    a.check_invariants();
    let dim = a.config().embedding_dim.unwrap_or(0);
    for chunk in ops.chunks(2) {
        let (op, x) = (chunk[0], chunk[1]);
        let before = a.stats();
        let step = a.max_last_step().saturating_add((x % 3) as u64);
        match op % 7 {
            0 | 1 => {
                let m = 1 + (x % 5) as usize;
                let floor = a.lineage_floor().get();
                let next = a.next_id().get();
                let span = next - floor;
                let parents: Vec<Option<Id>> = (0..m)
                    .map(|i| match (x as usize + i) % 3 {
                        0 if span > 0 => Some(Id(floor + (x as u64 * 7 + i as u64) % span)),
                        1 => (next + i as u64).checked_sub(1).map(Id),
                        _ => None,
                    })
                    .collect();
                let scores: Vec<f64> = (0..m)
                    .map(|i| [0.0, 0.5, 1e6, -2.0][(i + x as usize) % 4])
                    .collect();
                let rows = vec![
                    0.25f32;
                    if op % 7 == 0 {
                        m * dim
                    } else {
                        (x as usize) % 3
                    }
                ];
                let payloads = vec![&file[..(x as usize).min(file.len())]; m];
                let emb = (dim > 0 || op % 7 == 1).then_some(rows.as_slice());
                let _ = a.add(&payloads, &scores, Some(&parents), emb, step);
            }
            2 => {
                if let Ok(ids) = a.sample(x as usize, step) {
                    let info = a.info(&ids).expect("drawn ids are resident");
                    assert!(info
                        .iter()
                        .all(|e| e.times_sampled >= 1 && e.last_step == step));
                }
            }
            3 => {
                let ids = a.ids();
                let scores = vec![[0.0, 3.0, -1.0][x as usize % 3]; ids.len()];
                let _ = a.update_scores(&ids, &scores);
            }
            4 => {
                if let Some(&id) = a.ids().get(x as usize) {
                    a.remove(&[id]).expect("a resident id");
                }
            }
            5 => {
                a.forget_lineage(Id(a.next_id().get().saturating_sub(x as u64)));
            }
            _ => {
                let bytes = a.to_bytes();
                a = Archive::from_bytes(&bytes).expect("our own snapshot loads");
                assert_eq!(a.to_bytes(), bytes);
            }
        }
        a.check_invariants();
        let after = a.stats();
        assert!(after.next_id >= before.next_id && after.evicted >= before.evicted);
        assert!(after.rejected >= before.rejected && after.removed >= before.removed);
        assert!(after.sampled >= before.sampled);
        let _ = a.probabilities(a.max_last_step());
    }
});
