//! [`Lenient`]: a typed field of an agent's native message that tolerates
//! a value of another type (it becomes absent) instead of failing the whole
//! message. For what a model wrote (tool inputs) or a protocol keeps loose,
//! where one odd field must not turn a known message into `agent.unparsed`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `T` when the field holds one, else `None`; use with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<T> Lenient<T> {
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }

    pub fn into_inner(self) -> Option<T> {
        self.0
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(Lenient(serde_json::from_value(v).ok()))
    }
}

/// Decodes `T` from a JSON value the agent sent as an opaque payload (a
/// tool's input), or `T::default()` when it is not one (e.g. not an object).
pub fn decode<T: DeserializeOwned + Default>(v: &Value) -> T {
    T::deserialize(v).unwrap_or_default()
}
