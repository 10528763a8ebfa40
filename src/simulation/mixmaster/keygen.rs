//! Key generation for simulated remailers: RSA primes by trial division and Miller-Rabin,
//! from a seeded generator so that a simulation's keys (and with them every packet) are the
//! same for the same seed.

use num_bigint::BigUint;
use rand::Rng;

use super::SecretKey;
use crate::compose::mixmaster::KeyError;

fn small_primes() -> Vec<u32> {
    let mut sieve = vec![true; 4000];
    let mut primes = Vec::new();
    for i in 2..sieve.len() {
        if sieve[i] {
            primes.push(i as u32);
            for j in (i * i..sieve.len()).step_by(i) {
                sieve[j] = false;
            }
        }
    }
    primes
}

fn miller_rabin(n: &BigUint, rounds: usize, rng: &mut impl Rng) -> bool {
    let one = BigUint::from(1u8);
    let two = BigUint::from(2u8);
    let n_minus_1 = n - &one;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    'witness: for _ in 0..rounds {
        let a = loop {
            let mut bytes = vec![0u8; n.bits().div_ceil(8) as usize];
            rng.fill(&mut bytes[..]);
            let a = BigUint::from_bytes_be(&bytes) % n;
            if a >= two && a < n_minus_1 {
                break a;
            }
        };
        let mut x = a.modpow(&d, n);
        if x == one || x == n_minus_1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n_minus_1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// A random prime of exactly `bits` bits with the top two bits set (so a product of two has
/// exactly `2·bits`), and `p mod 65537 != 1` (so 65537 is a valid exponent).
pub fn gen_prime(bits: u64, rng: &mut impl Rng) -> BigUint {
    let primes = small_primes();
    loop {
        let mut bytes = vec![0u8; (bits / 8) as usize];
        rng.fill(&mut bytes[..]);
        bytes[0] |= 0xc0;
        let last = bytes.len() - 1;
        bytes[last] |= 1;
        let candidate = BigUint::from_bytes_be(&bytes);
        if primes.iter().any(|&p| (&candidate % p) == BigUint::from(0u8)) {
            continue;
        }
        if (&candidate % 65537u32) == BigUint::from(1u8) {
            continue;
        }
        if miller_rabin(&candidate, 40, rng) {
            return candidate;
        }
    }
}

/// A fresh remailer key of `bits` (1024, 2048, 3072 or 4096) with exponent 65537.
pub fn generate(bits: u64, rng: &mut impl Rng) -> Result<SecretKey, KeyError> {
    let p = gen_prime(bits / 2, rng);
    let q = gen_prime(bits / 2, rng);
    SecretKey::from_primes(p, q, BigUint::from(65537u32))
}
