//! The 64-bit mixing used for flow keys and uids: the same bits as `pcapaudit/decode/vector.py`'s
//! `mix64` and `pcapaudit/engine.py`'s `flow_hash_one`, `make_uids` and `client_key`.

pub const MIX_C1: u64 = 0xBF58_476D_1CE4_E5B9;
pub const MIX_C2: u64 = 0x94D0_49BB_1331_11EB;
pub const MIX_PERTURB: u64 = 0x9E37_79B9_7F4A_7C15;

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// splitmix64 finaliser (`mix64` / `_mix_int`).
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 33)).wrapping_mul(MIX_C1);
    x = (x ^ (x >> 31)).wrapping_mul(MIX_C2);
    x ^ (x >> 27)
}

#[inline]
fn hi(a: u128) -> u64 {
    (a >> 64) as u64
}

#[inline]
fn lo(a: u128) -> u64 {
    a as u64
}

/// `flow_hash_one`: the hash of a canonical key (a the lesser endpoint).
#[allow(clippy::too_many_arguments)]
pub fn flow_hash(ipver: u8, proto: u8, vlan: i32, a: u128, aport: u16, b: u128, bport: u16) -> u64 {
    let mut h = mix64(lo(a).wrapping_add(MIX_PERTURB));
    h = mix64(h ^ hi(a));
    h = mix64(h ^ lo(b));
    h = mix64(h ^ hi(b));
    let small = (u64::from(aport) << 40)
        | (u64::from(bport) << 24)
        | (u64::from(proto) << 8)
        | u64::from(ipver);
    h = mix64(h ^ small);
    mix64(h ^ (i64::from(vlan) + 1) as u64)
}

/// `make_uids` of one flow: "C" + 16 base32 characters from the key hash, first time and first packet.
pub fn make_uid(hash: u64, first_ts: f64, first_pkt: u64) -> String {
    let h1 = mix64(hash ^ first_ts.to_bits());
    let h2 = mix64(h1 ^ first_pkt.wrapping_add(MIX_PERTURB));
    let mut s = String::with_capacity(17);
    s.push('C');
    for i in 0..12 {
        s.push(B32[((h1 >> (59 - 5 * i)) & 31) as usize] as char);
    }
    for i in 0..4 {
        s.push(B32[((h2 >> (59 - 5 * i)) & 31) as usize] as char);
    }
    s
}

/// `client_key`: hash of a packet's client endpoint address (the higher port's; on a tie the lower
/// address). Both directions of a flow agree.
pub fn client_key(src: u128, sport: u16, dst: u128, dport: u16) -> u64 {
    let s_lower = src <= dst;
    let use_src = sport > dport || (sport == dport && s_lower);
    let a = if use_src { src } else { dst };
    mix64(mix64(lo(a).wrapping_add(MIX_PERTURB)) ^ hi(a))
}
