//! Criterion benches of the hot paths: Merkle root and proofs, hashing.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use maestro_engine::merkle::{leaf_hash, Tree};
use maestro_engine::Algorithm;

fn bench(c: &mut Criterion) {
    let n = 1 << 16;
    let leaves: Vec<_> = (0..n as u64)
        .map(|i| leaf_hash(Algorithm::Sha256, &i.to_le_bytes()))
        .collect();
    c.bench_function("merkle_root_65k_sha256", |b| {
        b.iter(|| Tree::from_leaf_hashes(Algorithm::Sha256, black_box(leaves.clone())).root())
    });
    let t = Tree::from_leaf_hashes(Algorithm::Sha256, leaves.clone());
    c.bench_function("inclusion_proof_65k", |b| {
        b.iter(|| t.inclusion_proof(black_box(12345), n as u64))
    });
    let buf = vec![7u8; 16 << 20];
    c.bench_function("blake3_16MiB", |b| {
        b.iter(|| Algorithm::Blake3.hash(black_box(&buf)))
    });
    c.bench_function("sha256_16MiB", |b| {
        b.iter(|| Algorithm::Sha256.hash(black_box(&buf)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
