//! (in progress)
// lead's compile placeholders; replaced by the api helper's implementation
pub struct Selector;
impl Selector {
    pub fn parse(_s: &str) -> Result<Selector, String> { Ok(Selector) }
    pub fn matches_json(&self, _l: Option<&serde_json::Value>) -> bool { true }
    pub fn from_label_selector(_l: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> Result<Selector, String> { Ok(Selector) }
}
impl std::fmt::Display for Selector { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "") } }
impl std::fmt::Debug for Selector { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "") } }
