//! The answer function: a query's bytes and a snapshot in, the response's bytes out, with
//! no I/O and, on the hot path, no allocation (the caller passes a reused buffer).

use std::net::IpAddr;

use crate::snapshot::{Node, Snapshot, zone_of};
use crate::wire::{
    self, CLASS_ANY, CLASS_IN, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RA, FLAG_RD, FLAG_TC, HEADER_LEN, ParseError, Query,
    RCODE_FORMERR, RCODE_NOERROR, RCODE_NOTIMP, RCODE_NXDOMAIN, RCODE_REFUSED, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_AXFR,
    TYPE_CNAME, TYPE_IXFR, TYPE_MAILA, TYPE_MAILB, TYPE_OPT, TYPE_SRV,
};

/// The UDP payload size we advertise and accept at most: the DNS flag day 2020 value, which
/// avoids IP fragmentation.
pub const EDNS_UDP_SIZE: u16 = 1232;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Who asked and how: the transport decides the size limit, the client's address its
/// namespace (for autopath).
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub transport: Transport,
    pub client: Option<IpAddr>,
}

impl Context {
    pub fn udp() -> Context {
        Context { transport: Transport::Udp, client: None }
    }
}

/// What happened to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `out` holds the response.
    Reply(Answered),
    /// Nothing to send (not a query at all).
    Drop,
    /// A name outside our zones, and forwarding is on: the caller sends it upstream.
    Forward { qtype: u16 },
    /// Autopath: the query was the first step of a pod's search path for an outside name.
    /// The caller resolves `target` (lower-case wire form) upstream and, if it exists,
    /// answers with `autopath_reply`; otherwise `out` already holds the NXDOMAIN.
    Autopath { qtype: u16, target: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub qtype: u16,
    pub rcode: u8,
    /// NOERROR with no answer for the type.
    pub nodata: bool,
}

/// Answers `query` from `snapshot` as a UDP server would to an unknown client. Allocates
/// the response; the servers use `answer_into`.
pub fn answer(query: &[u8], snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    answer_into(query, snapshot, Context::udp(), &mut out);
    out
}

/// Answers `query` into `out` (cleared first).
pub fn answer_into(msg: &[u8], snap: &Snapshot, ctx: Context, out: &mut Vec<u8>) -> Outcome {
    out.clear();
    let q = match wire::parse_query(msg) {
        Ok(q) => q,
        Err(ParseError::Drop) => return Outcome::Drop,
        Err(ParseError::Rcode(rcode)) => {
            header_only(msg, rcode, out);
            return Outcome::Reply(Answered { qtype: 0, rcode, nodata: false });
        }
    };
    let ra = if snap.forwarding { FLAG_RA } else { 0 };
    let reply = |out: &mut Vec<u8>, rcode: u8, flags: u16| {
        start(msg, &q, flags | ra, rcode, out);
        finish(&q, out, 0, 0, 0, ctx.transport);
        Outcome::Reply(Answered { qtype: q.qtype, rcode, nodata: false })
    };
    if let Some(e) = q.edns
        && e.version != 0
    {
        // BADVERS (16): zero in the header, 1 in the OPT record's extended RCODE.
        start(msg, &q, ra, 0, out);
        put_opt(out, 1, e.dnssec_ok);
        set_u16(out, 10, 1);
        return Outcome::Reply(Answered { qtype: q.qtype, rcode: 16, nodata: false });
    }
    if q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
        return reply(out, RCODE_NOTIMP, 0);
    }
    match q.qtype {
        TYPE_OPT => return reply(out, RCODE_FORMERR, 0),
        TYPE_AXFR | TYPE_IXFR => return reply(out, RCODE_REFUSED, 0),
        TYPE_MAILA | TYPE_MAILB => return reply(out, RCODE_NOTIMP, 0),
        _ => {}
    }
    let name = q.name();
    let node = snap.names.get(name);
    let zone_idx = match node {
        Some(n) => usize::from(n.zone),
        None => match zone_of(&snap.zones, name) {
            Some(z) if snap.zones[z].authoritative => z,
            _ if snap.forwarding => return Outcome::Forward { qtype: q.qtype },
            _ => return reply(out, RCODE_REFUSED, 0),
        },
    };
    let zone = &snap.zones[zone_idx];
    // The SOA's owner, the apex, is a suffix of the question's name.
    let apex_ptr = q.suffix_at(&zone.name).map(|s| HEADER_LEN + s);
    start(msg, &q, FLAG_AA | ra, RCODE_NOERROR, out);
    let Some(node) = node else {
        set_rcode(out, RCODE_NXDOMAIN);
        let ns = put_soa(out, apex_ptr, &zone.soa, &zone.name);
        finish(&q, out, 0, ns, 0, ctx.transport);
        if let Some(target) = autopath_target(&q, snap, ctx) {
            if let Some(local) = autopath_local(snap, &target, q.qtype) {
                let records = local_records(snap, &local, q.qtype);
                if autopath_reply(msg, &local, &records, snap.ttl, ctx, snap.forwarding, out) {
                    return Outcome::Reply(Answered { qtype: q.qtype, rcode: RCODE_NOERROR, nodata: false });
                }
            } else if snap.forwarding {
                return Outcome::Autopath { qtype: q.qtype, target };
            }
        }
        return Outcome::Reply(Answered { qtype: q.qtype, rcode: RCODE_NXDOMAIN, nodata: false });
    };
    let (an, ar) = put_answers(out, snap, node, q.qtype, HEADER_LEN as u16);
    if an == 0 {
        let ns = put_soa(out, apex_ptr, &zone.soa, &zone.name);
        finish(&q, out, 0, ns, 0, ctx.transport);
        return Outcome::Reply(Answered { qtype: q.qtype, rcode: RCODE_NOERROR, nodata: true });
    }
    finish(&q, out, an, 0, ar, ctx.transport);
    Outcome::Reply(Answered { qtype: q.qtype, rcode: RCODE_NOERROR, nodata: false })
}

/// Writes the records of `node` that answer `qtype`, owned by the name at `owner`, and
/// returns (answers, additionals). Follows one CNAME inside our data, and adds the
/// addresses of SRV targets as additional records.
fn put_answers(out: &mut Vec<u8>, snap: &Snapshot, node: &Node, qtype: u16, owner: u16) -> (u16, u16) {
    let mut an = 0;
    if let Some(cname) = node.sets.iter().find(|s| s.rtype == TYPE_CNAME)
        && qtype != TYPE_CNAME
        && qtype != TYPE_ANY
    {
        let rdata_at = out.len() + 12;
        an += put_set(out, owner, &cname.data);
        let target = cname.data.get(10..).unwrap_or_default();
        if let Some(t) = snap.names.get(target)
            && let Ok(ptr) = u16::try_from(rdata_at)
            && ptr < 0x4000
            && t.sets.iter().all(|s| s.rtype != TYPE_CNAME)
        {
            for set in t.sets.iter().filter(|s| s.rtype == qtype) {
                an += put_set(out, ptr, &set.data);
            }
        }
        return (an, 0);
    }
    let srv_start = out.len();
    for set in node.sets.iter().filter(|s| s.rtype == qtype || qtype == TYPE_ANY) {
        an += put_set(out, owner, &set.data);
    }
    let mut ar = 0;
    if qtype == TYPE_SRV && an > 0 {
        // Each SRV record is pointer(2) type(2) class(2) ttl(4) rdlen(2) prio(2) weight(2)
        // port(2) target; the target's addresses go in the additional section.
        let srv_end = out.len();
        let mut pos = srv_start;
        while pos + 18 < srv_end {
            let rdlen = usize::from(u16::from_be_bytes([out[pos + 10], out[pos + 11]]));
            let target_at = pos + 18;
            let next = pos + 12 + rdlen;
            if let Some(t) = out.get(target_at..next).and_then(|tn| snap.names.get(tn))
                && let Ok(ptr) = u16::try_from(target_at)
                && ptr < 0x4000
            {
                for set in t.sets.iter().filter(|s| s.rtype == TYPE_A || s.rtype == TYPE_AAAA) {
                    ar += put_set(out, ptr, &set.data);
                }
            }
            pos = next;
        }
    }
    (an, ar)
}

/// Copies an encoded record set, prefixing each record with a pointer to its owner.
fn put_set(out: &mut Vec<u8>, owner: u16, data: &[u8]) -> u16 {
    let mut n = 0;
    let mut pos = 0;
    while pos + 10 <= data.len() {
        let rdlen = usize::from(u16::from_be_bytes([data[pos + 8], data[pos + 9]]));
        let end = (pos + 10 + rdlen).min(data.len());
        out.extend_from_slice(&(0xc000 | owner).to_be_bytes());
        out.extend_from_slice(&data[pos..end]);
        pos = end;
        n += 1;
    }
    n
}

/// The SOA for a negative answer: owner by pointer when the apex is in the question,
/// written out otherwise.
fn put_soa(out: &mut Vec<u8>, apex_ptr: Option<usize>, soa: &[u8], apex: &[u8]) -> u16 {
    match apex_ptr.and_then(|p| u16::try_from(p).ok()).filter(|p| *p < 0x4000) {
        Some(p) => out.extend_from_slice(&(0xc000 | p).to_be_bytes()),
        None => out.extend_from_slice(apex),
    }
    out.extend_from_slice(soa);
    1
}

/// Header and question of the response.
fn start(msg: &[u8], q: &Query, flags: u16, rcode: u8, out: &mut Vec<u8>) {
    out.clear();
    let flags = FLAG_QR | flags | (q.flags & (FLAG_RD | FLAG_CD)) | u16::from(rcode & 0xf);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(msg.get(HEADER_LEN..q.question_end).unwrap_or_default());
}

/// Sets the section counts, adds the OPT record, and truncates for UDP: when the answer
/// does not fit, the client gets the question with TC set and asks again over TCP.
fn finish(q: &Query, out: &mut Vec<u8>, an: u16, ns: u16, ar: u16, transport: Transport) {
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => usize::from(q.edns.map_or(512, |e| e.udp_size.clamp(512, EDNS_UDP_SIZE))),
    };
    let opt_len = if q.edns.is_some() { 11 } else { 0 };
    let (mut an, mut ns, mut ar) = (an, ns, ar);
    if out.len() + opt_len > limit {
        out.truncate(q.question_end);
        let flags = u16::from_be_bytes([out[2], out[3]]) | FLAG_TC;
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        (an, ns, ar) = (0, 0, 0);
    }
    if let Some(e) = q.edns {
        put_opt(out, 0, e.dnssec_ok);
        ar += 1;
    }
    set_u16(out, 6, an);
    set_u16(out, 8, ns);
    set_u16(out, 10, ar);
}

fn put_opt(out: &mut Vec<u8>, ext_rcode: u8, dnssec_ok: bool) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_UDP_SIZE.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
}

fn set_u16(out: &mut [u8], at: usize, v: u16) {
    if let Some(s) = out.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

fn set_rcode(out: &mut [u8], rcode: u8) {
    if let Some(b) = out.get_mut(3) {
        *b = (*b & 0xf0) | (rcode & 0xf);
    }
}

/// An answer to a query whose question we could not read: its ID and opcode, no question.
fn header_only(msg: &[u8], rcode: u8, out: &mut Vec<u8>) {
    out.clear();
    let id = wire::message_id(msg).unwrap_or(0);
    let qflags = u16::from_be_bytes([msg.get(2).copied().unwrap_or(0), msg.get(3).copied().unwrap_or(0)]);
    let flags = FLAG_QR | (qflags & (0x7800 | FLAG_RD)) | u16::from(rcode);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
}

/// Autopath (after CoreDNS's plugin of that name): a pod in namespace N whose resolv.conf
/// says `search N.svc.<zone> svc.<zone> <zone>` and `ndots:5` asks for `example.com` first
/// as `example.com.N.svc.<zone>`. When that name does not exist, and the client is a pod
/// of N (so we know its search path), the server resolves the rest of the path itself and
/// answers with a CNAME to the first name that exists. Returns the outside name to try; the
/// in-cluster candidates are tried here (`autopath_local`).
fn autopath_target(q: &Query, snap: &Snapshot, ctx: Context) -> Option<Vec<u8>> {
    if q.qtype != TYPE_A && q.qtype != TYPE_AAAA {
        return None;
    }
    let ns = snap.pod_ns.get(&ctx.client?)?;
    let zone = &snap.zones.first()?.name;
    let mut suffix = Vec::with_capacity(ns.len() + 5 + zone.len());
    suffix.push(ns.len() as u8);
    suffix.extend_from_slice(ns.as_bytes());
    suffix.extend_from_slice(b"\x03svc");
    suffix.extend_from_slice(zone);
    let at = q.suffix_at(&suffix)?;
    let mut target = q.name()[..at].to_vec();
    target.push(0);
    // Two labels at least: single labels (`nginx`) are cluster names or typos, never worth
    // an upstream round trip.
    let labels = q.label_starts().iter().filter(|s| usize::from(**s) < at).count();
    (labels >= 2).then_some(target)
}

/// The in-cluster steps of autopath: `target.svc.<zone>` and `target.<zone>`. Returns the
/// first that has records of the type.
pub fn autopath_local(snap: &Snapshot, target: &[u8], qtype: u16) -> Option<Vec<u8>> {
    let zone = &snap.zones.first()?.name;
    let stem = target.strip_suffix(&[0])?;
    for mid in [&b"\x03svc"[..], &b""[..]] {
        let mut name = Vec::with_capacity(stem.len() + mid.len() + zone.len());
        name.extend_from_slice(stem);
        name.extend_from_slice(mid);
        name.extend_from_slice(zone);
        if snap.names.get(name.as_slice()).is_some_and(|n| n.sets.iter().any(|s| s.rtype == qtype)) {
            return Some(name);
        }
    }
    None
}

/// A record of an upstream answer, names expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub owner: Vec<u8>,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

/// Reads the answer section of an upstream response to a query for `qtype`: the RCODE and
/// the A, AAAA and CNAME records (the only ones an A or AAAA answer needs; others are
/// dropped because their rdata may hold compressed names we would have to rewrite).
pub fn read_answers(resp: &[u8]) -> Option<(u8, Vec<Record>)> {
    if resp.len() < HEADER_LEN {
        return None;
    }
    let rcode = resp[3] & 0xf;
    let qd = u16::from_be_bytes([resp[4], resp[5]]);
    let an = u16::from_be_bytes([resp[6], resp[7]]);
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = wire::skip_name(resp, pos)? + 4;
    }
    let mut records = Vec::new();
    for _ in 0..an {
        let mut owner = Vec::new();
        pos = wire::read_name(resp, pos, &mut owner)?;
        let head = resp.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([head[0], head[1]]);
        let ttl = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let rdlen = usize::from(u16::from_be_bytes([head[8], head[9]]));
        let rdata_at = pos + 10;
        let raw = resp.get(rdata_at..rdata_at + rdlen)?;
        pos = rdata_at + rdlen;
        let rdata = match rtype {
            TYPE_A | TYPE_AAAA => raw.to_vec(),
            TYPE_CNAME => {
                let mut t = Vec::new();
                wire::read_name(resp, rdata_at, &mut t)?;
                t
            }
            _ => continue,
        };
        owner.make_ascii_lowercase();
        records.push(Record { owner, rtype, ttl, rdata });
    }
    Some((rcode, records))
}

/// The autopath answer: the question as asked, a CNAME from it to `target`, then the
/// target's records (from upstream, or from our own data). Returns false (and leaves `out`
/// alone) when the query cannot be parsed again.
pub fn autopath_reply(
    msg: &[u8],
    target: &[u8],
    records: &[Record],
    ttl: u32,
    ctx: Context,
    forwarding: bool,
    out: &mut Vec<u8>,
) -> bool {
    let Ok(q) = wire::parse_query(msg) else { return false };
    let mut buf = Vec::with_capacity(512);
    start(msg, &q, if forwarding { FLAG_RA } else { 0 }, RCODE_NOERROR, &mut buf);
    buf.extend_from_slice(&(0xc000 | HEADER_LEN as u16).to_be_bytes());
    buf.extend_from_slice(&TYPE_CNAME.to_be_bytes());
    buf.extend_from_slice(&CLASS_IN.to_be_bytes());
    buf.extend_from_slice(&ttl.to_be_bytes());
    buf.extend_from_slice(&(target.len() as u16).to_be_bytes());
    buf.extend_from_slice(target);
    let mut an = 1;
    for r in records {
        buf.extend_from_slice(&r.owner);
        buf.extend_from_slice(&r.rtype.to_be_bytes());
        buf.extend_from_slice(&CLASS_IN.to_be_bytes());
        buf.extend_from_slice(&r.ttl.to_be_bytes());
        buf.extend_from_slice(&(r.rdata.len() as u16).to_be_bytes());
        buf.extend_from_slice(&r.rdata);
        an += 1;
    }
    finish(&q, &mut buf, an, 0, 0, ctx.transport);
    *out = buf;
    true
}

/// The records of `name` of type `qtype` in our own data, as `Record`s, for an autopath
/// answer that ends inside the cluster.
pub fn local_records(snap: &Snapshot, name: &[u8], qtype: u16) -> Vec<Record> {
    let mut v = Vec::new();
    let Some(node) = snap.names.get(name) else { return v };
    for set in node.sets.iter().filter(|s| s.rtype == qtype) {
        let mut pos = 0;
        let d = &set.data;
        while pos + 10 <= d.len() {
            let ttl = u32::from_be_bytes([d[pos + 4], d[pos + 5], d[pos + 6], d[pos + 7]]);
            let rdlen = usize::from(u16::from_be_bytes([d[pos + 8], d[pos + 9]]));
            let end = (pos + 10 + rdlen).min(d.len());
            v.push(Record { owner: name.to_vec(), rtype: qtype, ttl, rdata: d[pos + 10..end].to_vec() });
            pos = end;
        }
    }
    v
}

/// A SERVFAIL for a query (upstream unreachable).
pub fn servfail(msg: &[u8], ctx: Context, out: &mut Vec<u8>) {
    match wire::parse_query(msg) {
        Ok(q) => {
            start(msg, &q, FLAG_RA, wire::RCODE_SERVFAIL, out);
            finish(&q, out, 0, 0, 0, ctx.transport);
        }
        Err(_) => header_only(msg, wire::RCODE_SERVFAIL, out),
    }
}

/// Fits an upstream response to the client's limit: over UDP, a response larger than the
/// client accepts becomes the question with TC set.
pub fn fit_upstream(msg: &[u8], resp: &mut Vec<u8>, ctx: Context) {
    if ctx.transport == Transport::Tcp {
        return;
    }
    let Ok(q) = wire::parse_query(msg) else { return };
    let limit = usize::from(q.edns.map_or(512, |e| e.udp_size.clamp(512, EDNS_UDP_SIZE)));
    if resp.len() <= limit {
        return;
    }
    let rcode = resp.get(3).map_or(0, |b| b & 0xf);
    start(msg, &q, FLAG_RA | FLAG_TC, rcode, resp);
    if q.edns.is_some() {
        put_opt(resp, 0, false);
        set_u16(resp, 10, 1);
    }
}

#[cfg(test)]
mod tests;
