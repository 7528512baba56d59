//! The protobuf wire format, read side: varints, tags and the four wire
//! types Kubernetes messages can contain. Nothing here knows any schema and
//! nothing recurses, so skipping an unknown field, however deep its contents
//! claim to nest, costs no stack.

/// A malformation of the wire encoding itself; the decoder adds the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    /// A varint, a fixed-width value or a length-delimited payload runs past
    /// the end of its buffer.
    Truncated,
    /// A varint of more than 10 bytes.
    VarintOverflow,
    /// A tag whose field number is 0 or beyond 2^29 - 1.
    InvalidTag(u64),
    /// Wire types 3 and 4 (groups, never produced by Kubernetes) and 6, 7.
    UnsupportedWireType(u8),
}

pub(crate) const WIRE_VARINT: u8 = 0;
pub(crate) const WIRE_FIXED64: u8 = 1;
pub(crate) const WIRE_LEN: u8 = 2;
pub(crate) const WIRE_FIXED32: u8 = 5;

/// The largest field number protobuf allows.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// One field's value as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    pub(crate) fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => WIRE_VARINT,
            WireValue::Fixed64(_) => WIRE_FIXED64,
            WireValue::Len(_) => WIRE_LEN,
            WireValue::Fixed32(_) => WIRE_FIXED32,
        }
    }
}

/// A cursor over one message's bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A base-128 varint. Bits beyond the 64th of a 10-byte varint are
    /// dropped, as Go's decoders do.
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some((&byte, rest)) = self.buf.split_first() else {
                return Err(WireError::Truncated);
            };
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::VarintOverflow)
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
        if len > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    /// The next field, or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(WireError::InvalidTag(key));
        }
        let number = u32::try_from(number).map_err(|_| WireError::InvalidTag(key))?;
        let value = match (key & 7) as u8 {
            WIRE_VARINT => WireValue::Varint(self.varint()?),
            WIRE_FIXED64 => {
                let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| WireError::Truncated)?;
                WireValue::Fixed64(u64::from_le_bytes(bytes))
            }
            WIRE_LEN => {
                let len = self.varint()?;
                WireValue::Len(self.take(len)?)
            }
            WIRE_FIXED32 => {
                let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| WireError::Truncated)?;
                WireValue::Fixed32(u32::from_le_bytes(bytes))
            }
            other => return Err(WireError::UnsupportedWireType(other)),
        };
        Ok(Some((number, value)))
    }
}
