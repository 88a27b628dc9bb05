//! Protobuf wire format reading: varints, tags and length-delimited slices, with every
//! malformation reported instead of panicking.

use super::DecodeError;

/// A protobuf wire type (the low three bits of a tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// One field's raw value as read off the wire.
#[derive(Debug, Clone, Copy)]
pub(super) enum WireValue<'a> {
    Varint(u64),
    /// A fixed64 value; no Kubernetes field we decode uses one, so only its presence matters.
    Fixed64,
    Len(&'a [u8]),
    /// A fixed32 value, likewise only skipped.
    Fixed32,
}

impl WireValue<'_> {
    /// The wire type this value was encoded with.
    pub(super) fn wire_type(&self) -> WireType {
        match self {
            WireValue::Varint(_) => WireType::Varint,
            WireValue::Fixed64 => WireType::Fixed64,
            WireValue::Len(_) => WireType::Len,
            WireValue::Fixed32 => WireType::Fixed32,
        }
    }
}

/// Reads the fields of one message in order.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over one message's bytes.
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The next `(field number, value)`, or `None` at the end of the message.
    pub(super) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(DecodeError::Malformed(format!(
                "invalid field number {number}"
            )));
        }
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                WireValue::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| truncated())?;
                WireValue::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                WireValue::Fixed32
            }
            other => {
                return Err(DecodeError::Malformed(format!(
                    "unsupported wire type {other} for field {number}"
                )));
            }
        };
        Ok(Some((number as u32, value)))
    }

    /// Reads a base-128 varint of at most ten bytes.
    pub(super) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some((&byte, rest)) = self.buf.split_first() else {
                return Err(truncated());
            };
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed(
            "varint longer than ten bytes".into(),
        ))
    }

    /// True when every byte has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(truncated());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
}

fn truncated() -> DecodeError {
    DecodeError::Malformed("message truncated".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_of_each_wire_type() {
        // field 1 varint 150, field 2 "hi", field 3 fixed64 1, field 4 fixed32 2
        let bytes = [
            0x08, 0x96, 0x01, 0x12, 2, b'h', b'i', 0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x25, 2, 0, 0, 0,
        ];
        let mut r = Reader::new(&bytes);
        assert!(matches!(
            r.next_field().unwrap(),
            Some((1, WireValue::Varint(150)))
        ));
        assert!(matches!(
            r.next_field().unwrap(),
            Some((2, WireValue::Len(b"hi")))
        ));
        assert!(matches!(
            r.next_field().unwrap(),
            Some((3, WireValue::Fixed64))
        ));
        assert!(matches!(
            r.next_field().unwrap(),
            Some((4, WireValue::Fixed32))
        ));
        assert!(r.next_field().unwrap().is_none());
    }

    #[test]
    fn rejects_truncation_groups_and_overlong_varints() {
        for bad in [
            &[0x12, 5, b'a'][..],
            &[0x0b][..],
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ][..],
            &[0x00][..],
        ] {
            assert!(Reader::new(bad).next_field().is_err(), "{bad:?}");
        }
    }
}
