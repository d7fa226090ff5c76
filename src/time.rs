//! Times as the Kubernetes API server stores them.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A `Time` as the API server stores it: whole seconds. Cloud times often carry milliseconds,
/// and a desired value that can never equal the stored one would be written on every poll.
pub fn whole_seconds(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}
