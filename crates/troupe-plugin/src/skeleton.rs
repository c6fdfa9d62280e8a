//! `troupe plugin new`: a plugin skeleton in one of the languages `plugins/build.sh` builds. Each
//! has one working tool (`words`), the host's `log`, and says how to build and try it.

use std::path::PathBuf;

/// A language a plugin can be written in here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    C,
    Cpp,
    Zig,
    Go,
    AssemblyScript,
    JavaScript,
    Python,
}

impl Lang {
    pub const ALL: [Lang; 7] = [
        Lang::C,
        Lang::Cpp,
        Lang::Zig,
        Lang::Go,
        Lang::AssemblyScript,
        Lang::JavaScript,
        Lang::Python,
    ];

    /// The names `--lang` takes.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Lang::C => &["c"],
            Lang::Cpp => &["cpp", "c++"],
            Lang::Zig => &["zig"],
            Lang::Go => &["go"],
            Lang::AssemblyScript => &["assemblyscript", "as"],
            Lang::JavaScript => &["js", "javascript"],
            Lang::Python => &["python", "py"],
        }
    }

    pub fn parse(name: &str) -> Option<Lang> {
        let name = name.to_ascii_lowercase();
        Lang::ALL
            .into_iter()
            .find(|l| l.names().contains(&name.as_str()))
    }

    fn source(self) -> (&'static str, &'static str) {
        match self {
            Lang::C => ("c", include_str!("../templates/skeleton.c")),
            Lang::Cpp => ("cpp", include_str!("../templates/skeleton.cpp")),
            Lang::Zig => ("zig", include_str!("../templates/skeleton.zig")),
            Lang::Go => ("go", include_str!("../templates/skeleton.go")),
            Lang::AssemblyScript => ("ts", include_str!("../templates/skeleton.ts")),
            Lang::JavaScript => ("js", include_str!("../templates/skeleton.js")),
            Lang::Python => ("py", include_str!("../templates/skeleton.py")),
        }
    }

    /// Core modules run as they are; these two are built as components.
    fn is_component(self) -> bool {
        matches!(self, Lang::JavaScript | Lang::Python)
    }
}

/// Why a name cannot be a plugin's, or `None` when it can: it names the source file, a Python
/// module and a Zig/AssemblyScript import path.
pub fn check_name(name: &str) -> Option<String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (!ok).then(|| {
        format!("`{name}` cannot be a plugin name: use lowercase letters, digits and `_`, starting with a letter")
    })
}

/// The files of a new plugin `name` in `lang`, relative to its directory.
pub fn files(name: &str, lang: Lang) -> Vec<(PathBuf, String)> {
    let (ext, text) = lang.source();
    let mut files = vec![(
        PathBuf::from(format!("{name}.{ext}")),
        text.replace("{{name}}", name),
    )];
    if lang.is_component() {
        // componentize-qjs/-py generate bindings from the world; the build uses this copy.
        files.push((PathBuf::from("wit/world.wit"), crate::WIT.to_string()));
    }
    files.push((PathBuf::from("README.md"), readme(name, lang, ext)));
    files
}

fn readme(name: &str, lang: Lang, ext: &str) -> String {
    let what = if lang.is_component() {
        "a component"
    } else {
        "a core module (Troupe runs it with WASI preview 1 and the canonical ABI)"
    };
    format!(
        "# {name}\n\n\
         A Troupe tool plugin in {lang:?}, built as {what} of the `troupe:plugin/tool-plugin@{version}` \
         world. Its one tool, `words`, counts the words of a text: replace it with yours in `{name}.{ext}`.\n\n\
         ```sh\n\
         # from the Troupe checkout (installs the toolchain it needs on first use)\n\
         plugins/build.sh path/to/{name}\n\
         troupe plugin inspect path/to/{name}/{name}.wasm\n\
         troupe plugin call path/to/{name}/{name}.wasm words '{{\"text\": \"a b c\"}}'\n\
         ```\n\n\
         In a crew file:\n\n\
         ```json\n\
         \"plugins\": [{{\"id\": \"{name}\", \"path\": \"path/to/{name}/{name}.wasm\"}}],\n\
         \"agents\": [{{\"id\": \"…\", \"tools\": [\"{name}.words\"], …}}]\n\
         ```\n\n\
         A plugin gets nothing it is not granted: add `\"grants\": {{\"documents\": true}}` to read the \
         run's documents, `\"kv\": true` for a scratch space, `\"http\": [\"host\"]` to fetch from a host. \
         See plugins/README.md in the Troupe repository.\n",
        version = crate::WORLD_VERSION,
    )
}
