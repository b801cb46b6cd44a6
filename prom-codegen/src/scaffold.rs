//! `prom-codegen new`: a service crate that builds and runs as written — the crate the README's
//! "Use Prom in your crate" describes (a test keeps the two identical), under the caller's name.

use std::path::{Path, PathBuf};

/// The files of a new crate: path inside the crate, template text.
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/new/Cargo.toml")),
    (".gitignore", include_str!("../templates/new/gitignore")),
    ("build.rs", include_str!("../templates/new/build.rs")),
    ("specs/orders.yaml", include_str!("../templates/new/specs/orders.yaml")),
    ("src/main.rs", include_str!("../templates/new/src/main.rs")),
];

/// The package name the templates are written with.
const TEMPLATE_NAME: &str = "orders";

/// What to scaffold.
#[derive(Debug, Clone, Default)]
pub struct Scaffold {
    name: Option<String>,
    prom_path: Option<PathBuf>,
}

/// Why a crate could not be scaffolded.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The target directory exists and is not empty (nothing is overwritten).
    NotEmpty(PathBuf),
    /// The package name is not one cargo accepts.
    BadName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Reading or writing a file failed.
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for ScaffoldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScaffoldError::NotEmpty(dir) => write!(
                f,
                "`{}` exists and is not empty; name a new directory (nothing was written)",
                dir.display()
            ),
            ScaffoldError::BadName { name, reason } => {
                write!(f, "`{name}` cannot be a package name: {reason}; pass another with `--name`")
            }
            ScaffoldError::Io(path, error) => write!(f, "`{}`: {error}", path.display()),
        }
    }
}

impl std::error::Error for ScaffoldError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScaffoldError::Io(_, error) => Some(error),
            _ => None,
        }
    }
}

impl Scaffold {
    /// A crate named after its directory, depending on the published prom crates.
    pub fn new() -> Scaffold {
        Scaffold::default()
    }

    /// Names the package (default: the directory's name).
    pub fn with_name(mut self, name: impl Into<String>) -> Scaffold {
        self.name = Some(name.into());
        self
    }

    /// Depends on the prom crates of a checkout at `path` instead of crates.io versions.
    pub fn with_prom_path(mut self, path: impl Into<PathBuf>) -> Scaffold {
        self.prom_path = Some(path.into());
        self
    }

    /// The files (path inside the crate, contents) a crate in `dir` gets.
    pub fn files(&self, dir: &Path) -> Result<Vec<(&'static str, String)>, ScaffoldError> {
        let name = match &self.name {
            Some(name) => name.clone(),
            // `new .` names the crate after the current directory, as `cargo init` does.
            None => dir
                .file_name()
                .map(std::ffi::OsStr::to_os_string)
                .or_else(|| dir.canonicalize().ok()?.file_name().map(std::ffi::OsStr::to_os_string))
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        check_name(&name)?;
        Ok(TEMPLATES
            .iter()
            .map(|&(path, text)| {
                let text = if path == "Cargo.toml" { self.manifest(text, &name) } else { text.to_owned() };
                (path, text)
            })
            .collect())
    }

    /// Writes the crate into `dir` (created; it must not exist or be empty) and returns the
    /// files written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
        let files = self.files(dir)?;
        match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
            Ok(true) => return Err(ScaffoldError::NotEmpty(dir.to_path_buf())),
            Ok(false) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(ScaffoldError::Io(dir.to_path_buf(), error)),
        }
        let mut written = Vec::with_capacity(files.len());
        for (path, text) in files {
            let path = dir.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| ScaffoldError::Io(parent.to_path_buf(), e))?;
            }
            std::fs::write(&path, text).map_err(|e| ScaffoldError::Io(path.clone(), e))?;
            written.push(path);
        }
        Ok(written)
    }

    fn manifest(&self, template: &str, name: &str) -> String {
        let mut text =
            template.replacen(&format!("name = \"{TEMPLATE_NAME}\""), &format!("name = {name:?}"), 1);
        if let Some(checkout) = &self.prom_path {
            text = text
                .lines()
                .map(|line| path_dependency(line, checkout).unwrap_or_else(|| line.to_owned()))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n";
        }
        text
    }
}

/// `prom-x = { version = "...", rest` → `prom-x = { path = "<checkout>/prom-x", rest`.
fn path_dependency(line: &str, checkout: &Path) -> Option<String> {
    let crate_name =
        ["prom-runtime", "prom-codegen"].into_iter().find(|n| line.starts_with(&format!("{n} ")))?;
    let start = line.find("version = \"")?;
    let end = start + "version = \"".len() + line[start + "version = \"".len()..].find('"')? + 1;
    let path = checkout.join(crate_name);
    Some(format!("{}path = {:?}{}", &line[..start], path.display().to_string(), &line[end..]))
}

/// Cargo's rules for a package name, the ones a directory name can break.
fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |reason| Err(ScaffoldError::BadName { name: name.to_owned(), reason });
    let Some(first) = name.chars().next() else { return bad("it is empty") };
    if !first.is_ascii_alphabetic() && first != '_' {
        return bad("it must start with a letter or `_`");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return bad("only ASCII letters, digits, `-` and `_` are allowed");
    }
    if name.len() > 64 {
        return bad("it is longer than 64 characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_comes_from_the_directory_or_the_option() {
        let files = Scaffold::new().files(Path::new("/tmp/shop-api")).expect("test setup");
        let manifest = &files.iter().find(|(p, _)| *p == "Cargo.toml").expect("test setup").1;
        assert!(manifest.contains("name = \"shop-api\""), "{manifest}");
        let files = Scaffold::new().with_name("billing").files(Path::new("/tmp/x")).expect("test setup");
        assert!(files[0].1.contains("name = \"billing\""));
    }

    #[test]
    fn the_current_directory_names_the_crate_after_itself() {
        let dir = tempfile::Builder::new().prefix("shop").tempdir().expect("test setup");
        let files = Scaffold::new().files(&dir.path().join(".")).expect("test setup");
        let name = dir.path().file_name().expect("test setup").to_string_lossy().into_owned();
        assert!(files[0].1.contains(&format!("name = \"{name}\"")), "{}", files[0].1);
    }

    #[test]
    fn a_checkout_path_replaces_the_versions_of_both_prom_crates() {
        let files = Scaffold::new().with_prom_path("/src/prom").files(Path::new("svc")).expect("test setup");
        let manifest = &files[0].1;
        assert!(
            manifest
                .contains("prom-runtime = { path = \"/src/prom/prom-runtime\", default-features = false }")
        );
        assert!(
            manifest
                .contains("prom-codegen = { path = \"/src/prom/prom-codegen\", default-features = false }")
        );
        assert!(manifest.contains("tokio = { version = \"1\""), "other dependencies keep their versions");
    }

    #[test]
    fn names_cargo_refuses_are_refused_with_the_reason() {
        for (name, reason) in [("", "empty"), ("1st", "start with a letter"), ("my app", "only ASCII")] {
            let error = Scaffold::new().with_name(name).files(Path::new("d")).expect_err("refused");
            assert!(error.to_string().contains(reason), "{name}: {error}");
        }
    }

    #[test]
    fn a_non_empty_directory_is_left_alone() {
        let dir = tempfile::tempdir().expect("test setup");
        std::fs::write(dir.path().join("keep.txt"), "mine").expect("test setup");
        let error = Scaffold::new().with_name("svc").write(dir.path()).expect_err("refused");
        assert!(matches!(error, ScaffoldError::NotEmpty(_)), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("test setup").count(), 1);
        assert_eq!(std::fs::read_to_string(dir.path().join("keep.txt")).expect("test setup"), "mine");
    }

    #[test]
    fn a_new_or_empty_directory_gets_every_file() {
        let dir = tempfile::tempdir().expect("test setup");
        let target = dir.path().join("svc");
        let written = Scaffold::new().write(&target).expect("test setup");
        assert_eq!(written.len(), TEMPLATES.len());
        for (path, _) in TEMPLATES {
            assert!(target.join(path).is_file(), "{path}");
        }
    }

    #[test]
    fn the_templates_are_the_readme_crate() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("test setup");
        for (path, text) in TEMPLATES.iter().filter(|(p, _)| *p != ".gitignore") {
            let marker = format!("<!-- file: {path} -->\n");
            let start = readme.find(&marker).unwrap_or_else(|| panic!("README has no {marker}"));
            let fenced = &readme[start + marker.len()..];
            let body_start = fenced.find('\n').expect("test setup") + 1;
            let body_end = fenced.find("\n```\n").expect("test setup") + 1;
            assert_eq!(
                &fenced[body_start..body_end],
                *text,
                "prom-codegen/templates/new/{path} differs from the README's block: change both"
            );
        }
    }
}
