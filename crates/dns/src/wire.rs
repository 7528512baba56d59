//! The DNS wire format: the query parser on the hot path (no allocation: the question's
//! name is lower-cased into a fixed buffer) and the few encoding helpers the record
//! store uses when it builds a snapshot.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const HEADER_LEN: usize = 12;
/// The largest query we parse. A query is one question plus an OPT record; anything much
/// longer is not a query a stub resolver sends.
pub const MAX_QUERY: usize = 4096;
/// The longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_IXFR: u16 = 251;
pub const TYPE_AXFR: u16 = 252;
pub const TYPE_MAILB: u16 = 253;
pub const TYPE_MAILA: u16 = 254;
pub const TYPE_ANY: u16 = 255;

pub const CLASS_IN: u16 = 1;
pub const CLASS_ANY: u16 = 255;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;
/// The extended RCODE for an EDNS version we do not speak (RFC 6891 §6.1.3); its upper
/// eight bits go in the OPT record and its lower four are zero.
pub const RCODE_BADVERS: u16 = 16;

pub const FLAG_QR: u16 = 0x8000;
pub const FLAG_AA: u16 = 0x0400;
pub const FLAG_TC: u16 = 0x0200;
pub const FLAG_RD: u16 = 0x0100;
pub const FLAG_RA: u16 = 0x0080;
pub const FLAG_CD: u16 = 0x0010;

/// The EDNS0 part of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A parsed query. The name is kept twice: as sent (its bytes are copied into the answer
/// so that 0x20 case randomisation survives) and lower-cased, for the lookup.
#[derive(Clone)]
pub struct Query {
    pub id: u16,
    pub flags: u16,
    pub qtype: u16,
    pub qclass: u16,
    /// The end of the question section in the query: `query[12..question_end]` is the
    /// question exactly as sent.
    pub question_end: usize,
    lower: [u8; MAX_NAME],
    lower_len: u8,
    /// Where each label starts in the name, the root's zero byte last.
    labels: [u8; 128],
    n_labels: u8,
    pub edns: Option<Edns>,
}

/// Why a query could not be parsed, and so what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than a header, or a response: nothing to answer (answering a response could
    /// start a loop between two servers).
    Drop,
    /// A well-formed header, and this RCODE to answer with.
    Rcode(u8),
}

impl Query {
    /// The question's name, lower-cased, in wire form with its final zero byte.
    pub fn name(&self) -> &[u8] {
        &self.lower[..usize::from(self.lower_len)]
    }

    /// Offsets of the labels in `name()`; the last is the root.
    pub fn label_starts(&self) -> &[u8] {
        &self.labels[..usize::from(self.n_labels)]
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// Whether `suffix` (a lower-case wire name) is this name or one of its ancestors, and
    /// if so where in the name it starts.
    pub fn suffix_at(&self, suffix: &[u8]) -> Option<usize> {
        let name = self.name();
        if suffix.len() > name.len() {
            return None;
        }
        let start = name.len() - suffix.len();
        (self.label_starts().contains(&(start as u8)) && &name[start..] == suffix).then_some(start)
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads the message ID of anything at least two bytes long, for error answers.
pub fn message_id(msg: &[u8]) -> Option<u16> {
    be16(msg, 0)
}

/// Parses a query: header, exactly one question, and the additional section for an OPT
/// record. Every index is checked; nothing here can panic on any input.
pub fn parse_query(msg: &[u8]) -> Result<Query, ParseError> {
    if msg.len() < HEADER_LEN {
        return Err(ParseError::Drop);
    }
    let flags = be16(msg, 2).ok_or(ParseError::Drop)?;
    if flags & FLAG_QR != 0 {
        return Err(ParseError::Drop);
    }
    if msg.len() > MAX_QUERY {
        return Err(ParseError::Rcode(RCODE_FORMERR));
    }
    let qdcount = be16(msg, 4).ok_or(ParseError::Drop)?;
    let ancount = be16(msg, 6).ok_or(ParseError::Drop)?;
    let nscount = be16(msg, 8).ok_or(ParseError::Drop)?;
    let arcount = be16(msg, 10).ok_or(ParseError::Drop)?;
    let opcode = (flags >> 11) & 0xf;
    if opcode != 0 {
        return Err(ParseError::Rcode(RCODE_NOTIMP));
    }
    if qdcount != 1 || ancount != 0 || nscount != 0 {
        return Err(ParseError::Rcode(RCODE_FORMERR));
    }
    let mut q = Query {
        id: be16(msg, 0).ok_or(ParseError::Drop)?,
        flags,
        qtype: 0,
        qclass: 0,
        question_end: 0,
        lower: [0; MAX_NAME],
        lower_len: 0,
        labels: [0; 128],
        n_labels: 0,
        edns: None,
    };
    let formerr = ParseError::Rcode(RCODE_FORMERR);
    // The question's name: plain labels only. A compression pointer in the first name of a
    // message can only point forward or at itself, so it is malformed.
    let mut pos = HEADER_LEN;
    let mut out = 0usize;
    loop {
        let len = usize::from(*msg.get(pos).ok_or(formerr)?);
        if len & 0xc0 != 0 {
            return Err(formerr);
        }
        if out + len + 1 > MAX_NAME || usize::from(q.n_labels) >= q.labels.len() {
            return Err(formerr);
        }
        q.labels[usize::from(q.n_labels)] = out as u8;
        q.n_labels += 1;
        let label = msg.get(pos + 1..pos + 1 + len).ok_or(formerr)?;
        q.lower[out] = len as u8;
        for (dst, src) in q.lower[out + 1..out + 1 + len].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        out += len + 1;
        pos += len + 1;
        if len == 0 {
            break;
        }
    }
    q.lower_len = out as u8;
    q.qtype = be16(msg, pos).ok_or(formerr)?;
    q.qclass = be16(msg, pos + 2).ok_or(formerr)?;
    pos += 4;
    q.question_end = pos;
    // The additional section: at most one OPT record, owned by the root. Other records
    // (a TSIG, say) are skipped: we sign nothing and trust nothing.
    for _ in 0..arcount {
        let owner_root = *msg.get(pos).ok_or(formerr)? == 0;
        pos = skip_name(msg, pos).ok_or(formerr)?;
        let rtype = be16(msg, pos).ok_or(formerr)?;
        let class = be16(msg, pos + 2).ok_or(formerr)?;
        let ttl_hi = be16(msg, pos + 4).ok_or(formerr)?;
        let ttl_lo = be16(msg, pos + 6).ok_or(formerr)?;
        let rdlen = usize::from(be16(msg, pos + 8).ok_or(formerr)?);
        pos += 10;
        if pos + rdlen > msg.len() {
            return Err(formerr);
        }
        pos += rdlen;
        if rtype == TYPE_OPT {
            if q.edns.is_some() || !owner_root {
                return Err(formerr);
            }
            q.edns = Some(Edns {
                udp_size: class.max(512),
                version: (ttl_hi & 0xff) as u8,
                dnssec_ok: ttl_lo & 0x8000 != 0,
            });
        }
    }
    Ok(q)
}

/// Skips a possibly compressed name, returning the position after it.
pub fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xc0 => {
                msg.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

/// Reads a possibly compressed name into `out` (wire form, case kept), returning the
/// position after the name where it was first met. Pointers must point backwards, which
/// bounds the loop.
pub fn read_name(msg: &[u8], start: usize, out: &mut Vec<u8>) -> Option<usize> {
    let mut pos = start;
    let mut end = None;
    let mut limit = pos;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 => {
                let label = msg.get(pos..pos + 1 + usize::from(len))?;
                out.extend_from_slice(label);
                if out.len() > MAX_NAME {
                    return None;
                }
                pos += 1 + usize::from(len);
                if len == 0 {
                    return Some(end.unwrap_or(pos));
                }
            }
            0xc0 => {
                let target = usize::from(u16::from_be_bytes([len & 0x3f, *msg.get(pos + 1)?]));
                if end.is_none() {
                    end = Some(pos + 2);
                }
                if target >= limit {
                    return None;
                }
                limit = target;
                pos = target;
            }
            _ => return None,
        }
    }
}

/// Encodes a dotted name ("my-svc.default.svc.cluster.local", a trailing dot allowed) in
/// lower-case wire form. None when a label is empty or too long or the name is too long.
pub fn encode_name(dotted: &str) -> Option<Vec<u8>> {
    let dotted = dotted.strip_suffix('.').unwrap_or(dotted);
    let mut out = Vec::with_capacity(dotted.len() + 2);
    if !dotted.is_empty() {
        for label in dotted.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    (out.len() <= MAX_NAME).then_some(out)
}

/// Renders a wire name as dotted text with a trailing dot (for logs and tests).
pub fn name_to_string(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let label = wire.get(pos + 1..pos + 1 + usize::from(len)).unwrap_or_default();
        s.push_str(&String::from_utf8_lossy(label));
        s.push('.');
        pos += 1 + usize::from(len);
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// The PTR owner name for an address: `d.c.b.a.in-addr.arpa` or the nibble form under
/// `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// The dashed form of an address used in pod names and generated endpoint hostnames:
/// `10-42-0-5`, or for IPv6 the full form with colons as dashes (as CoreDNS does).
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let s: Vec<String> = v6.segments().iter().map(|s| format!("{s:x}")).collect();
            s.join("-")
        }
    }
}

pub fn rdata_a(ip: Ipv4Addr) -> Vec<u8> {
    ip.octets().to_vec()
}

pub fn rdata_aaaa(ip: Ipv6Addr) -> Vec<u8> {
    ip.octets().to_vec()
}

/// SRV rdata: priority, weight, port, and the target uncompressed (RFC 2782).
pub fn rdata_srv(priority: u16, weight: u16, port: u16, target: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + target.len());
    v.extend_from_slice(&priority.to_be_bytes());
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(target);
    v
}

/// TXT rdata: one character-string per item, each at most 255 bytes.
pub fn rdata_txt(texts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for t in texts {
        let b = &t.as_bytes()[..t.len().min(255)];
        v.push(b.len() as u8);
        v.extend_from_slice(b);
    }
    v
}

/// SOA rdata; `serial` changes with every snapshot.
pub fn rdata_soa(mname: &[u8], rname: &[u8], serial: u32, minimum: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(mname.len() + rname.len() + 20);
    v.extend_from_slice(mname);
    v.extend_from_slice(rname);
    for n in [serial, 7200, 1800, 86400, minimum] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v
}

/// The mnemonic of a record type, or `TYPEnn` (RFC 3597).
pub fn type_name(rtype: u16) -> String {
    match rtype {
        TYPE_A => "A".into(),
        TYPE_NS => "NS".into(),
        TYPE_CNAME => "CNAME".into(),
        TYPE_SOA => "SOA".into(),
        TYPE_PTR => "PTR".into(),
        TYPE_TXT => "TXT".into(),
        TYPE_AAAA => "AAAA".into(),
        TYPE_SRV => "SRV".into(),
        TYPE_OPT => "OPT".into(),
        other => format!("TYPE{other}"),
    }
}

/// Renders the rdata at `msg[start..start + len]` in master-file form. Names in it may be
/// compressed against `msg`.
pub fn rdata_to_text(rtype: u16, msg: &[u8], start: usize, len: usize) -> String {
    let Some(rdata) = msg.get(start..start + len) else { return "<truncated>".into() };
    let name_at = |at: usize| {
        let mut n = Vec::new();
        read_name(msg, at, &mut n).map(|next| (name_to_string(&n), next))
    };
    let u32_at = |b: &[u8], at: usize| b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    match rtype {
        TYPE_A if len == 4 => Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string(),
        TYPE_AAAA if len == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(rdata);
            Ipv6Addr::from(o).to_string()
        }
        TYPE_CNAME | TYPE_PTR | TYPE_NS => name_at(start).map(|(n, _)| n).unwrap_or_default(),
        TYPE_SRV if len > 6 => {
            let f = |i: usize| u16::from_be_bytes([rdata[i], rdata[i + 1]]);
            let target = name_at(start + 6).map(|(n, _)| n).unwrap_or_default();
            format!("{} {} {} {target}", f(0), f(2), f(4))
        }
        TYPE_TXT => {
            let mut parts = Vec::new();
            let mut i = 0;
            while let Some(&l) = rdata.get(i) {
                let t = rdata.get(i + 1..i + 1 + usize::from(l)).unwrap_or_default();
                parts.push(format!("\"{}\"", String::from_utf8_lossy(t)));
                i += 1 + usize::from(l);
            }
            parts.join(" ")
        }
        TYPE_SOA => {
            let Some((mname, next)) = name_at(start) else { return String::new() };
            let Some((rname, next)) = name_at(next) else { return String::new() };
            let nums: Vec<String> = (0..5).filter_map(|i| u32_at(msg, next + 4 * i)).map(|n| n.to_string()).collect();
            format!("{mname} {rname} {}", nums.join(" "))
        }
        _ => {
            let hex: String = rdata.iter().map(|b| format!("{b:02x}")).collect();
            format!("\\# {len} {hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend(encode_name(name).expect("name"));
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    #[test]
    fn parses_and_lowercases_the_question() {
        let mut m = query("My-Svc.Default.svc.cluster.local", TYPE_A);
        m[13] = b'M';
        let q = parse_query(&m).expect("parse");
        assert_eq!(name_to_string(q.name()), "my-svc.default.svc.cluster.local.");
        assert_eq!(q.qtype, TYPE_A);
        assert_eq!(q.question_end, m.len());
        assert_eq!(q.label_starts().len(), 6);
        assert_eq!(q.suffix_at(&encode_name("cluster.local").expect("n")), Some(19));
        assert_eq!(q.suffix_at(&encode_name("luster.local").expect("n")), None);
    }

    #[test]
    fn rejects_pointers_and_bad_counts() {
        let mut m = query("a.b", TYPE_A);
        m[12] = 0xc0;
        assert_eq!(parse_query(&m).err(), Some(ParseError::Rcode(RCODE_FORMERR)));
        let mut m = query("a.b", TYPE_A);
        m[5] = 2;
        assert_eq!(parse_query(&m).err(), Some(ParseError::Rcode(RCODE_FORMERR)));
        let mut m = query("a.b", TYPE_A);
        m[2] |= 0x80;
        assert_eq!(parse_query(&m).err(), Some(ParseError::Drop));
        assert_eq!(parse_query(&m[..5]).err(), Some(ParseError::Drop));
    }

    #[test]
    fn reads_edns() {
        let mut m = query("a.b", TYPE_A);
        m[11] = 1;
        m.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, 0]);
        let q = parse_query(&m).expect("parse");
        assert_eq!(q.edns, Some(Edns { udp_size: 4096, version: 0, dnssec_ok: true }));
        let at = m.len() - 5;
        m[at] = 1;
        assert_eq!(parse_query(&m).expect("parse").edns.map(|e| e.version), Some(1));
    }

    #[test]
    fn reverse_and_dashed_names() {
        assert_eq!(reverse_name("10.96.0.10".parse().expect("ip")), "10.0.96.10.in-addr.arpa");
        assert!(reverse_name("fd00::1".parse().expect("ip")).starts_with("1.0.0.0.0.0.0.0"));
        assert_eq!(dashed("10.42.0.5".parse().expect("ip")), "10-42-0-5");
    }

    #[test]
    fn read_name_refuses_pointer_loops() {
        let msg = [0xc0, 0x00];
        assert_eq!(read_name(&msg, 0, &mut Vec::new()), None);
        let msg = [1, b'a', 0, 1, b'b', 0xc0, 0];
        let mut out = Vec::new();
        assert_eq!(read_name(&msg, 3, &mut out), Some(7));
        assert_eq!(name_to_string(&out), "b.a.");
    }
}
