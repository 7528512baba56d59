//! The answer function, record by record, against the fixture cluster.

use super::*;
use crate::fixtures;
use crate::snapshot::Snapshot;
use crate::wire::{CLASS_IN, TYPE_NS, TYPE_PTR, TYPE_SOA, TYPE_TXT, encode_name, name_to_string, read_name};

#[derive(Debug)]
struct Rr {
    name: String,
    rtype: u16,
    ttl: u32,
    data: String,
}

#[derive(Debug)]
struct Msg {
    id: u16,
    flags: u16,
    rcode: u8,
    qd: u16,
    answers: Vec<Rr>,
    authority: Vec<Rr>,
    additional: Vec<Rr>,
}

impl Msg {
    fn data(&self) -> Vec<String> {
        let mut v: Vec<String> = self.answers.iter().map(|r| r.data.clone()).collect();
        v.sort();
        v
    }
    fn tc(&self) -> bool {
        self.flags & FLAG_TC != 0
    }
    fn aa(&self) -> bool {
        self.flags & FLAG_AA != 0
    }
}

fn decode(m: &[u8]) -> Msg {
    let c = |i: usize| u16::from_be_bytes([m[i], m[i + 1]]);
    let (qd, an, ns, ar) = (c(4), c(6), c(8), c(10));
    let mut pos = 12;
    for _ in 0..qd {
        pos = wire::skip_name(m, pos).expect("question name") + 4;
    }
    let mut section = |n: u16| {
        let mut v = Vec::new();
        for _ in 0..n {
            let mut owner = Vec::new();
            pos = read_name(m, pos, &mut owner).expect("owner");
            let rtype = c(pos);
            let ttl = u32::from_be_bytes([m[pos + 4], m[pos + 5], m[pos + 6], m[pos + 7]]);
            let rdlen = usize::from(c(pos + 8));
            let data = wire::rdata_to_text(rtype, m, pos + 10, rdlen);
            pos += 10 + rdlen;
            assert!(pos <= m.len(), "record runs past the message");
            v.push(Rr { name: name_to_string(&owner), rtype, ttl, data });
        }
        v
    };
    let answers = section(an);
    let authority = section(ns);
    let additional = section(ar);
    assert_eq!(pos, m.len(), "trailing bytes");
    Msg { id: c(0), flags: c(2), rcode: (c(2) & 0xf) as u8, qd, answers, authority, additional }
}

/// A name in wire form with its case kept (encode_name lower-cases).
fn raw_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

fn query_with(name: &str, qtype: u16, class: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())];
    m.extend(raw_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&class.to_be_bytes());
    if let Some(size) = edns {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    m
}

fn snap() -> Snapshot {
    fixtures::cluster(100).snapshot(&fixtures::build_config())
}

fn ask(s: &Snapshot, name: &str, qtype: u16) -> Msg {
    decode(&answer(&query_with(name, qtype, CLASS_IN, None), s))
}

#[test]
fn clusterip_service_a() {
    let s = snap();
    let m = ask(&s, "my-nginx.default.svc.cluster.local", TYPE_A);
    assert_eq!((m.id, m.rcode, m.aa()), (0xbeef, RCODE_NOERROR, true));
    assert_eq!(m.data(), ["10.96.0.100"]);
    assert_eq!(m.answers[0].name, "my-nginx.default.svc.cluster.local.");
    assert_eq!(m.answers[0].ttl, 30);
    assert!(m.flags & FLAG_RD != 0, "RD is copied from the query");
}

#[test]
fn dual_stack_service_aaaa() {
    let s = snap();
    assert_eq!(ask(&s, "dual.default.svc.cluster.local", TYPE_A).data(), ["10.96.0.200"]);
    assert_eq!(ask(&s, "dual.default.svc.cluster.local", TYPE_AAAA).data(), ["fd00:10:96::c8"]);
}

#[test]
fn aaaa_of_an_ipv4_service_is_nodata_with_soa() {
    let s = snap();
    let m = ask(&s, "my-nginx.default.svc.cluster.local", TYPE_AAAA);
    assert_eq!(m.rcode, RCODE_NOERROR);
    assert!(m.answers.is_empty());
    assert_eq!(m.authority.len(), 1);
    assert_eq!(m.authority[0].rtype, TYPE_SOA);
    assert_eq!(m.authority[0].name, "cluster.local.");
    assert_eq!(m.authority[0].data, "ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 30");
}

#[test]
fn missing_name_is_nxdomain_with_soa() {
    let s = snap();
    let m = ask(&s, "nope.default.svc.cluster.local", TYPE_A);
    assert_eq!(m.rcode, RCODE_NXDOMAIN);
    assert!(m.aa());
    assert_eq!(m.authority.len(), 1);
    assert_eq!(m.authority[0].rtype, TYPE_SOA);
}

#[test]
fn empty_non_terminals_are_nodata() {
    let s = snap();
    for name in ["default.svc.cluster.local", "svc.cluster.local", "_tcp.my-nginx.default.svc.cluster.local"] {
        let m = ask(&s, name, TYPE_A);
        assert_eq!((m.rcode, m.answers.len(), m.authority.len()), (RCODE_NOERROR, 0, 1), "{name}");
    }
}

#[test]
fn headless_returns_ready_endpoints_only() {
    let s = snap();
    assert_eq!(ask(&s, "headless.default.svc.cluster.local", TYPE_A).data(), ["10.42.0.5", "10.42.1.6"]);
    assert_eq!(
        ask(&s, "headless-all.default.svc.cluster.local", TYPE_A).data(),
        ["10.42.0.5", "10.42.1.6", "10.42.2.7"],
        "publishNotReadyAddresses publishes every endpoint"
    );
    let empty = ask(&s, "empty-headless.default.svc.cluster.local", TYPE_A);
    assert_eq!((empty.rcode, empty.answers.len()), (RCODE_NOERROR, 0), "a headless Service with no endpoints exists");
}

#[test]
fn headless_endpoint_hostnames() {
    let s = snap();
    assert_eq!(ask(&s, "web-0.headless.default.svc.cluster.local", TYPE_A).data(), ["10.42.0.5"]);
    assert_eq!(ask(&s, "10-42-1-6.headless.default.svc.cluster.local", TYPE_A).data(), ["10.42.1.6"]);
    assert_eq!(ask(&s, "10-42-2-7.headless.default.svc.cluster.local", TYPE_A).rcode, RCODE_NXDOMAIN);
}

#[test]
fn srv_for_named_ports() {
    let s = snap();
    let m = ask(&s, "_http._tcp.my-nginx.default.svc.cluster.local", TYPE_SRV);
    assert_eq!(m.data(), ["0 100 80 my-nginx.default.svc.cluster.local."]);
    assert_eq!(m.additional.len(), 1, "the target's address comes along");
    assert_eq!(m.additional[0].data, "10.96.0.100");
    assert_eq!(
        ask(&s, "_dns._udp.my-nginx.default.svc.cluster.local", TYPE_SRV).data(),
        ["0 100 53 my-nginx.default.svc.cluster.local."]
    );
    assert_eq!(ask(&s, "_dns._tcp.my-nginx.default.svc.cluster.local", TYPE_SRV).rcode, RCODE_NXDOMAIN);
}

#[test]
fn srv_of_headless_names_each_endpoint() {
    let s = snap();
    let m = ask(&s, "_http._tcp.headless.default.svc.cluster.local", TYPE_SRV);
    assert_eq!(
        m.data(),
        [
            "0 50 8080 10-42-1-6.headless.default.svc.cluster.local.",
            "0 50 8080 web-0.headless.default.svc.cluster.local."
        ]
    );
    let mut extra: Vec<String> = m.additional.iter().map(|r| format!("{} {}", r.name, r.data)).collect();
    extra.sort();
    assert_eq!(
        extra,
        [
            "10-42-1-6.headless.default.svc.cluster.local. 10.42.1.6",
            "web-0.headless.default.svc.cluster.local. 10.42.0.5"
        ]
    );
}

#[test]
fn ptr_for_service_and_endpoint_ips() {
    let s = snap();
    assert_eq!(ask(&s, "100.0.96.10.in-addr.arpa", TYPE_PTR).data(), ["my-nginx.default.svc.cluster.local."]);
    assert_eq!(
        ask(&s, "5.0.42.10.in-addr.arpa", TYPE_PTR).data(),
        ["web-0.headless-all.default.svc.cluster.local.", "web-0.headless.default.svc.cluster.local."],
        "an endpoint of two headless Services has two names"
    );
    let v6 = wire::reverse_name("fd00:10:96::c8".parse().expect("ip"));
    assert_eq!(ask(&s, &v6, TYPE_PTR).data(), ["dual.default.svc.cluster.local."]);
    let m = ask(&s, "99.0.96.10.in-addr.arpa", TYPE_PTR);
    assert_eq!(m.rcode, RCODE_NXDOMAIN, "an unused Service IP: our reverse zone, no name");
    assert_eq!(m.authority[0].name, "10.in-addr.arpa.");
}

#[test]
fn externalname_is_a_cname() {
    let s = snap();
    let m = ask(&s, "ext.default.svc.cluster.local", TYPE_A);
    assert_eq!(m.rcode, RCODE_NOERROR);
    assert_eq!(m.answers.len(), 1);
    assert_eq!((m.answers[0].rtype, m.answers[0].data.as_str()), (TYPE_CNAME, "example.org."));
    // A target inside the zone is followed.
    let m = ask(&s, "alias.default.svc.cluster.local", TYPE_A);
    let got: Vec<String> = m.answers.iter().map(|r| format!("{} {}", r.name, r.data)).collect();
    assert_eq!(
        got,
        [
            "alias.default.svc.cluster.local. my-nginx.default.svc.cluster.local.",
            "my-nginx.default.svc.cluster.local. 10.96.0.100"
        ]
    );
}

#[test]
fn pod_records() {
    let s = snap();
    assert_eq!(ask(&s, "10-42-0-5.default.pod.cluster.local", TYPE_A).data(), ["10.42.0.5"]);
    assert_eq!(ask(&s, "10-42-0-5.other.pod.cluster.local", TYPE_A).rcode, RCODE_NXDOMAIN, "pods are verified");
}

#[test]
fn dns_version_txt_soa_and_ns() {
    let s = snap();
    assert_eq!(ask(&s, "dns-version.cluster.local", TYPE_TXT).data(), ["\"1.1.0\""]);
    assert_eq!(ask(&s, "cluster.local", TYPE_SOA).answers.len(), 1);
    assert_eq!(ask(&s, "cluster.local", TYPE_NS).data(), ["ns.dns.cluster.local."]);
}

#[test]
fn case_is_kept_in_the_question_and_ignored_in_the_lookup() {
    let s = snap();
    let m = answer(&query_with("My-NGINX.Default.SVC.cluster.LOCAL", TYPE_A, CLASS_IN, None), &s);
    let d = decode(&m);
    assert_eq!(d.data(), ["10.96.0.100"]);
    assert_eq!(d.answers[0].name, "My-NGINX.Default.SVC.cluster.LOCAL.");
}

#[test]
fn unknown_type_follows_the_name() {
    let s = snap();
    assert_eq!(ask(&s, "my-nginx.default.svc.cluster.local", 99).rcode, RCODE_NOERROR);
    assert_eq!(ask(&s, "nope.default.svc.cluster.local", 99).rcode, RCODE_NXDOMAIN);
    let any = ask(&s, "my-nginx.default.svc.cluster.local", TYPE_ANY);
    assert_eq!(any.data(), ["10.96.0.100"]);
}

#[test]
fn other_zones_are_refused_without_forwarding_and_forwarded_with() {
    let s = snap();
    let m = ask(&s, "example.org", TYPE_A);
    assert_eq!((m.rcode, m.aa()), (RCODE_REFUSED, false));
    let ptr = ask(&s, "8.8.8.8.in-addr.arpa", TYPE_PTR);
    assert_eq!(ptr.rcode, RCODE_REFUSED, "reverse names outside the Service range are not ours");
    let mut cfg = fixtures::build_config();
    cfg.forwarding = true;
    let f = fixtures::cluster(1).snapshot(&cfg);
    let mut out = Vec::new();
    let o = answer_into(&query_with("example.org", TYPE_A, CLASS_IN, None), &f, Context::udp(), &mut out);
    assert_eq!(o, Outcome::Forward { qtype: TYPE_A });
}

#[test]
fn bad_queries_get_their_rcode() {
    let s = snap();
    let q = query_with("my-nginx.default.svc.cluster.local", TYPE_A, 3, None);
    assert_eq!(decode(&answer(&q, &s)).rcode, RCODE_NOTIMP, "CHAOS class");
    let q = query_with("cluster.local", TYPE_AXFR, CLASS_IN, None);
    assert_eq!(decode(&answer(&q, &s)).rcode, RCODE_REFUSED, "zone transfer");
    let q = query_with("cluster.local", TYPE_OPT, CLASS_IN, None);
    assert_eq!(decode(&answer(&q, &s)).rcode, RCODE_FORMERR, "OPT as a question");
    let mut q = query_with("cluster.local", TYPE_A, CLASS_IN, None);
    q[2] = 0x28; // opcode 5, UPDATE
    let m = decode(&answer(&q, &s));
    assert_eq!((m.rcode, m.qd, m.id), (RCODE_NOTIMP, 0, 0xbeef));
    let mut q = query_with("cluster.local", TYPE_A, CLASS_IN, None);
    q.truncate(q.len() - 3);
    assert_eq!(decode(&answer(&q, &s)).rcode, RCODE_FORMERR, "cut question");
    let mut q = query_with("cluster.local", TYPE_A, CLASS_IN, None);
    q.resize(wire::MAX_QUERY + 1, 0);
    assert_eq!(decode(&answer(&q, &s)).rcode, RCODE_FORMERR, "oversized");
    assert!(answer(&q[..11], &s).is_empty(), "no header, no answer");
    let mut resp = query_with("cluster.local", TYPE_A, CLASS_IN, None);
    resp[2] |= 0x80;
    assert!(answer(&resp, &s).is_empty(), "responses are never answered");
}

#[test]
fn edns_is_echoed_and_bad_versions_rejected() {
    let s = snap();
    let m = decode(&answer(&query_with("my-nginx.default.svc.cluster.local", TYPE_A, CLASS_IN, Some(4096)), &s));
    assert_eq!(m.additional.len(), 1);
    assert_eq!(m.additional[0].rtype, wire::TYPE_OPT);
    let mut q = query_with("my-nginx.default.svc.cluster.local", TYPE_A, CLASS_IN, Some(4096));
    let at = q.len() - 5;
    q[at] = 1; // EDNS version 1
    let r = answer(&q, &s);
    let m = decode(&r);
    assert_eq!(m.rcode, 0);
    assert_eq!(m.additional.len(), 1);
    // The OPT's TTL carries the extended RCODE: 1 means BADVERS (16).
    let opt_ttl_at = r.len() - 6;
    assert_eq!(r[opt_ttl_at], 1);
}

#[test]
fn large_answers_truncate_over_udp_and_not_over_tcp() {
    let s = snap();
    let plain = decode(&answer(&query_with("big.default.svc.cluster.local", TYPE_A, CLASS_IN, None), &s));
    assert!(plain.tc());
    assert!(plain.answers.is_empty());
    let edns = decode(&answer(&query_with("big.default.svc.cluster.local", TYPE_A, CLASS_IN, Some(4096)), &s));
    assert!(edns.tc(), "100 records are 1,600 bytes, more than the 1,232 we send over UDP");
    let mut out = Vec::new();
    let tcp = Context { transport: Transport::Tcp, client: None };
    answer_into(&query_with("big.default.svc.cluster.local", TYPE_A, CLASS_IN, None), &s, tcp, &mut out);
    let m = decode(&out);
    assert!(!m.tc());
    assert_eq!(m.answers.len(), 100);
}

#[test]
fn autopath_answers_the_first_search_step() {
    let mut c = fixtures::cluster(1);
    c.pods.push(fixtures::pod("default", "client", "10.42.9.9"));
    let mut cfg = fixtures::build_config();
    let local = c.snapshot(&cfg);
    let ctx = Context { transport: Transport::Udp, client: "10.42.9.9".parse().ok() };
    let mut out = Vec::new();
    // `dig my-nginx.kube-system` from a pod of default: the first step is
    // my-nginx.kube-system.default.svc.cluster.local; the service is found one step later.
    let q = query_with("kube-dns.kube-system.default.svc.cluster.local", TYPE_A, CLASS_IN, None);
    answer_into(&q, &local, ctx, &mut out);
    let m = decode(&out);
    let got: Vec<String> = m.answers.iter().map(|r| format!("{} {}", wire::type_name(r.rtype), r.data)).collect();
    assert_eq!(got, ["CNAME kube-dns.kube-system.svc.cluster.local.", "A 10.96.0.10"]);
    // An outside name needs upstream: without forwarding it stays NXDOMAIN.
    let q = query_with("example.org.default.svc.cluster.local", TYPE_A, CLASS_IN, None);
    assert!(matches!(answer_into(&q, &local, ctx, &mut out), Outcome::Reply(a) if a.rcode == RCODE_NXDOMAIN));
    cfg.forwarding = true;
    let fwd = c.snapshot(&cfg);
    let o = answer_into(&q, &fwd, ctx, &mut out);
    assert_eq!(o, Outcome::Autopath { qtype: TYPE_A, target: encode_name("example.org").expect("name") });
    assert_eq!(decode(&out).rcode, RCODE_NXDOMAIN, "the fallback is ready in the buffer");
    // Not from a pod of that namespace: the search path is unknown, so no shortcut.
    let stranger = Context { transport: Transport::Udp, client: "10.42.0.5".parse().ok() };
    let q = query_with("example.org.other.svc.cluster.local", TYPE_A, CLASS_IN, None);
    assert!(matches!(answer_into(&q, &fwd, stranger, &mut out), Outcome::Reply(a) if a.rcode == RCODE_NXDOMAIN));
}

#[test]
fn autopath_reply_carries_upstream_records() {
    let s = snap();
    let q = query_with("Example.org.default.svc.cluster.local", TYPE_A, CLASS_IN, None);
    let target = encode_name("example.org").expect("name");
    let records = vec![Record { owner: target.clone(), rtype: TYPE_A, ttl: 60, rdata: vec![192, 0, 2, 1] }];
    let mut out = Vec::new();
    assert!(autopath_reply(&q, &target, &records, 30, Context::udp(), true, &mut out));
    let m = decode(&out);
    assert_eq!(m.answers[0].name, "Example.org.default.svc.cluster.local.");
    assert_eq!(m.answers[0].data, "example.org.");
    assert_eq!(m.answers[1].data, "192.0.2.1");
    let _ = s;
}

#[test]
fn read_answers_expands_compressed_names() {
    // Upstream answer: example.org CNAME www.example.org (compressed), www A 192.0.2.7.
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend(encode_name("example.org").expect("n"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'w', b'w', b'w', 0xc0, 12]);
    m.extend_from_slice(&[0xc0, 41, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
    let (rcode, recs) = read_answers(&m).expect("parse");
    assert_eq!(rcode, 0);
    assert_eq!(name_to_string(&recs[0].rdata), "www.example.org.");
    assert_eq!(name_to_string(&recs[1].owner), "www.example.org.");
}

#[test]
fn zone_file_lists_every_record() {
    let z = snap().zone_file("cluster.local");
    assert!(z.starts_with("cluster.local. 30 IN SOA "), "{}", &z[..80.min(z.len())]);
    assert!(z.contains("my-nginx.default.svc.cluster.local. 30 IN A 10.96.0.100\n"));
    assert!(z.contains(
        "_http._tcp.my-nginx.default.svc.cluster.local. 30 IN SRV 0 100 80 my-nginx.default.svc.cluster.local.\n"
    ));
}

/// The fuzz target, run as a bounded test on stable Rust: a seeded random-mutation loop
/// over valid queries (bit flips, byte overwrites, truncations, insertions, count
/// changes), for about `RKUBE_DNS_FUZZ_SECS` seconds (default 10). Every input must produce
/// either nothing or a message that decodes, carries the query's ID, and is a response.
#[test]
fn fuzz_the_query_parser_and_answer_function() {
    let s = snap();
    let secs: u64 = std::env::var("RKUBE_DNS_FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let seeds = [
        query_with("my-nginx.default.svc.cluster.local", TYPE_A, CLASS_IN, Some(1232)),
        query_with("_http._tcp.headless.default.svc.cluster.local", TYPE_SRV, CLASS_IN, None),
        query_with("5.0.42.10.in-addr.arpa", TYPE_PTR, CLASS_IN, Some(512)),
        query_with("big.default.svc.cluster.local", TYPE_A, CLASS_IN, None),
        query_with("alias.default.svc.cluster.local", TYPE_ANY, CLASS_IN, Some(4096)),
        query_with("example.org.default.svc.cluster.local", TYPE_AAAA, CLASS_IN, None),
    ];
    // xorshift64*, seeded: a failure is reproducible from its iteration number.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let ctxs = [Context::udp(), Context { transport: Transport::Tcp, client: "10.42.0.5".parse().ok() }];
    let mut out = Vec::new();
    let mut n: u64 = 0;
    while std::time::Instant::now() < deadline {
        for _ in 0..1000 {
            n += 1;
            let mut m = seeds[(rnd() % seeds.len() as u64) as usize].clone();
            for _ in 0..1 + rnd() % 4 {
                let len = m.len().max(1);
                let at = (rnd() % len as u64) as usize;
                match rnd() % 6 {
                    0 => {
                        if let Some(b) = m.get_mut(at) {
                            *b ^= 1 << (rnd() % 8);
                        }
                    }
                    1 => {
                        if let Some(b) = m.get_mut(at) {
                            *b = rnd() as u8;
                        }
                    }
                    2 => m.truncate(at),
                    3 => m.insert(at.min(m.len()), rnd() as u8),
                    4 => {
                        if m.len() > 11 {
                            m[4 + 2 * (rnd() % 4) as usize + 1] = rnd() as u8;
                        }
                    }
                    _ => m.extend((0..rnd() % 64).map(|_| rnd() as u8)),
                }
            }
            let ctx = ctxs[(n % 2) as usize];
            let outcome = answer_into(&m, &s, ctx, &mut out);
            if let Outcome::Reply(_) = outcome {
                assert!(out.len() >= 12, "iteration {n}: short reply");
                assert_eq!(out[0..2], m[0..2], "iteration {n}: id");
                assert!(out[2] & 0x80 != 0, "iteration {n}: QR");
                let _ = decode(&out);
                if ctx.transport == Transport::Udp {
                    assert!(out.len() <= usize::from(EDNS_UDP_SIZE), "iteration {n}: UDP reply too large");
                }
            }
        }
    }
    assert!(n > 10_000, "the loop ran only {n} times");
}
