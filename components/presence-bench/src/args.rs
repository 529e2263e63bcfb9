//! `--name value` arguments with defaults.

use std::collections::HashMap;

pub struct Args(HashMap<String, String>);

impl Args {
    pub fn parse(argv: impl Iterator<Item = String>) -> Self {
        let mut map = HashMap::new();
        let mut argv = argv.peekable();
        while let Some(arg) = argv.next() {
            if let Some(name) = arg.strip_prefix("--") {
                let value = match argv.peek() {
                    Some(v) if !v.starts_with("--") => argv.next().unwrap_or_default(),
                    _ => "true".into(),
                };
                map.insert(name.to_string(), value);
            }
        }
        Args(map)
    }

    pub fn get(&self, name: &str, default: &str) -> String {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    pub fn num(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("--{name} {v:?} is not a whole number")),
        }
    }
}
