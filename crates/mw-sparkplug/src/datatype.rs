//! Sparkplug data types (the `datatype` codes of the specification).

/// Every Sparkplug B data type, with its wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum DataType {
    Unknown = 0,
    Int8 = 1,
    Int16 = 2,
    Int32 = 3,
    Int64 = 4,
    UInt8 = 5,
    UInt16 = 6,
    UInt32 = 7,
    UInt64 = 8,
    Float = 9,
    Double = 10,
    Boolean = 11,
    String = 12,
    DateTime = 13,
    Text = 14,
    Uuid = 15,
    DataSet = 16,
    Bytes = 17,
    File = 18,
    Template = 19,
    PropertySet = 20,
    PropertySetList = 21,
    Int8Array = 22,
    Int16Array = 23,
    Int32Array = 24,
    Int64Array = 25,
    UInt8Array = 26,
    UInt16Array = 27,
    UInt32Array = 28,
    UInt64Array = 29,
    FloatArray = 30,
    DoubleArray = 31,
    BooleanArray = 32,
    StringArray = 33,
    DateTimeArray = 34,
}

impl DataType {
    /// All data types, in code order.
    pub const ALL: [DataType; 35] = [
        DataType::Unknown,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float,
        DataType::Double,
        DataType::Boolean,
        DataType::String,
        DataType::DateTime,
        DataType::Text,
        DataType::Uuid,
        DataType::DataSet,
        DataType::Bytes,
        DataType::File,
        DataType::Template,
        DataType::PropertySet,
        DataType::PropertySetList,
        DataType::Int8Array,
        DataType::Int16Array,
        DataType::Int32Array,
        DataType::Int64Array,
        DataType::UInt8Array,
        DataType::UInt16Array,
        DataType::UInt32Array,
        DataType::UInt64Array,
        DataType::FloatArray,
        DataType::DoubleArray,
        DataType::BooleanArray,
        DataType::StringArray,
        DataType::DateTimeArray,
    ];

    /// The type of a wire code; `None` for codes the specification does not define.
    pub fn from_code(code: u32) -> Option<DataType> {
        DataType::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// The wire code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The element size in bytes of a fixed-width numeric array type.
    pub fn array_element_size(self) -> Option<usize> {
        Some(match self {
            DataType::Int8Array | DataType::UInt8Array => 1,
            DataType::Int16Array | DataType::UInt16Array => 2,
            DataType::Int32Array | DataType::UInt32Array | DataType::FloatArray => 4,
            DataType::Int64Array
            | DataType::UInt64Array
            | DataType::DoubleArray
            | DataType::DateTimeArray => 8,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for (i, t) in DataType::ALL.iter().enumerate() {
            assert_eq!(t.code() as usize, i);
            assert_eq!(DataType::from_code(t.code()), Some(*t));
        }
        assert_eq!(DataType::from_code(35), None);
        assert_eq!(DataType::from_code(u32::MAX), None);
    }
}
