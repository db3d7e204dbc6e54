//! The console's files, embedded in the binary at build time (`include_bytes!` of
//! `api/src/console/assets/`): one fixed table of names, contents and media types. Nothing is
//! read from disk or downloaded when serving; a name not in the table is not served.

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

/// The table, from the list of file names in `api/src/console/assets/` (add a new file here).
macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$(Asset {
            name: $name,
            bytes: include_bytes!(concat!("assets/", $name)),
            content_type: content_type($name),
        }),*]
    };
}

/// Every file of the console.
pub const ASSETS: &[Asset] = embedded![
    "index.html",
    "console.css",
    "console.js",
    "page-apps.js",
    "page-audit.js",
    "page-events.js",
    "page-job.js",
    "page-jobs.js",
    "page-orchestrations.js",
    "page-runnables.js",
    "page-submit.js",
];

/// The file named `name`, if the console has one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// The console's page.
pub fn index() -> &'static Asset {
    // The table names index.html (checked by a test below).
    asset("index.html").unwrap_or(&ASSETS[0])
}

/// The media type of a file, by its extension.
const fn content_type(name: &str) -> &'static str {
    let name = name.as_bytes();
    if ends_with(name, b".html") {
        "text/html; charset=utf-8"
    } else if ends_with(name, b".css") {
        "text/css; charset=utf-8"
    } else if ends_with(name, b".js") || ends_with(name, b".mjs") {
        "text/javascript; charset=utf-8"
    } else if ends_with(name, b".json") {
        "application/json"
    } else if ends_with(name, b".svg") {
        "image/svg+xml"
    } else if ends_with(name, b".png") {
        "image/png"
    } else if ends_with(name, b".ico") {
        "image/x-icon"
    } else if ends_with(name, b".woff2") {
        "font/woff2"
    } else if ends_with(name, b".txt") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

const fn ends_with(name: &[u8], suffix: &[u8]) -> bool {
    if name.len() < suffix.len() {
        return false;
    }
    let start = name.len() - suffix.len();
    let mut i = 0;
    while i < suffix.len() {
        if name[start + i] != suffix[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_the_page_its_style_and_its_script() {
        assert_eq!(index().name, "index.html");
        assert_eq!(index().content_type, "text/html; charset=utf-8");
        assert_eq!(
            asset("console.js").map(|a| a.content_type),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            asset("console.css").map(|a| a.content_type),
            Some("text/css; charset=utf-8")
        );
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("").is_none());
    }

    #[test]
    fn every_file_of_the_folder_is_in_the_table() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console/assets");
        for entry in std::fs::read_dir(&folder).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                asset(&name).is_some(),
                "{name} is in {} but not in ASSETS",
                folder.display()
            );
        }
    }
}
