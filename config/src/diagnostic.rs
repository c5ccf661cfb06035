//! Problems found while loading a configuration, each tied to the place in the input that caused it.

use std::fmt;

/// A location inside a configuration, written the way a user finds it in their YAML:
/// `static_resources.clusters[2].lb_policy`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// The top of a document.
    pub fn root() -> Self {
        Self(String::new())
    }

    /// A path that starts somewhere other than the top (for example a resource that arrived over xDS).
    pub fn from_label(label: impl Into<String>) -> Self {
        Self(label.into())
    }

    /// The named field below this path.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// The element `index` of the list at this path.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// The entry `key` of the map at this path.
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[\"{key}\"]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(top level)")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The configuration is refused.
    Error,
    /// The configuration loads, but something in it is ignored.
    Warning,
}

/// One problem: where, and what is wrong (with what is accepted, when there is a choice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub path: Path,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: {}: {}", self.path, self.message)
    }
}

/// Collects every problem in one pass, so a user sees all of them at once rather than one per attempt.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, path: &Path, message: impl Into<String>) {
        self.push(Severity::Error, path, message.into());
    }

    pub fn warning(&mut self, path: &Path, message: impl Into<String>) {
        self.push(Severity::Warning, path, message.into());
    }

    fn push(&mut self, severity: Severity, path: &Path, message: String) {
        let diagnostic = Diagnostic {
            severity,
            path: path.clone(),
            message,
        };
        // The same problem can be reached twice (for example a shared default); say it once.
        if !self.items.contains(&diagnostic) {
            self.items.push(diagnostic);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        for d in other.items {
            self.push(d.severity, &d.path, d.message);
        }
    }

    /// `other`'s problems, each path put after `at` (`resources[2] Cluster "backend".lb_policy`).
    pub fn extend_at(&mut self, at: &Path, other: Diagnostics) {
        for d in other.items {
            let path = if d.path.0.is_empty() {
                at.clone()
            } else {
                Path(format!("{} {}", at.0, d.path.0))
            };
            self.push(d.severity, &path, d.message);
        }
    }
}
