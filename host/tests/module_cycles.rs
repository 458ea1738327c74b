//! The host's files import each other without circles: no file reaches, through its `use`
//! lines and the paths in its code, a file that reaches it back. A module's own ancestors and
//! descendants do not count (a `mod.rs` that re-exports its children and a child that names
//! its parent's types is how a Rust folder is built); every other loop fails the test with its
//! files and the names that tie them. Paths inside macro calls and a file's own
//! `#[cfg(test)]` module are not read. ARCHITECTURE.md draws the floors this keeps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module, as the path of segments below the crate root (`["fetch", "driver"]`).
type Module = Vec<String>;

#[test]
fn the_host_modules_import_each_other_without_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules_under(&src);
    assert!(modules.len() > 50, "read only {} files", modules.len());
    let graph = import_graph(&modules);
    let circles = circles(&graph);
    assert!(
        circles.is_empty(),
        "import circles between the host's files (break each by moving what both sides need \
         into a module below them):\n{}",
        describe(&circles, &graph)
    );
}

#[test]
fn a_loop_between_sibling_files_is_found_and_parent_child_references_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("fetch")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod fetch;\npub mod net;").unwrap();
    std::fs::write(src.join("net.rs"), "pub struct Pool;").unwrap();
    std::fs::write(
        src.join("fetch/mod.rs"),
        "mod driver;\nmod consumer;\npub use consumer::Consumer;\npub struct TopicPartition;",
    )
    .unwrap();
    std::fs::write(
        src.join("fetch/consumer.rs"),
        "use super::{TopicPartition, driver::Shared};\npub struct Consumer;",
    )
    .unwrap();
    std::fs::write(
        src.join("fetch/driver.rs"),
        "use crate::net::Pool;\npub struct Shared;\nfn f() { let _ = super::consumer::Consumer; }",
    )
    .unwrap();
    let graph = import_graph(&modules_under(src));
    let found = circles(&graph);
    assert_eq!(
        found,
        vec![vec![module("fetch::consumer"), module("fetch::driver")]],
        "{}",
        describe(&found, &graph)
    );
    // Without the back reference there is none.
    std::fs::write(
        src.join("fetch/driver.rs"),
        "use crate::net::Pool;\npub struct Shared;",
    )
    .unwrap();
    assert!(circles(&import_graph(&modules_under(src))).is_empty());
}

fn module(path: &str) -> Module {
    path.split("::").map(String::from).collect()
}

/// Every `.rs` file under `src` (the binary's `main.rs` aside) by its module path.
fn modules_under(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut modules = BTreeMap::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut segments: Module = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match segments.last().map(String::as_str) {
                Some("main") if segments.len() == 1 => continue,
                Some("lib") if segments.len() == 1 => segments.clear(),
                Some("mod") => {
                    segments.pop();
                }
                _ => {}
            }
            modules.insert(segments, path);
        }
    }
    modules
}

/// Who imports whom: for each file, the files its paths name, with the names.
type Graph = BTreeMap<Module, BTreeMap<Module, BTreeSet<String>>>;

fn import_graph(modules: &BTreeMap<Module, PathBuf>) -> Graph {
    let mut graph = Graph::new();
    for (module, file) in modules {
        let text = std::fs::read_to_string(file).unwrap();
        let syntax = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("cannot parse {}: {e}", file.display()));
        let mut paths = Paths::default();
        paths.visit_file(&syntax);
        let edges = graph.entry(module.clone()).or_default();
        for path in paths.found {
            let Some(absolute) = absolute(module, &path) else {
                continue;
            };
            let Some(target) = longest_module(modules, &absolute) else {
                continue;
            };
            let related = target.starts_with(module) || module.starts_with(&target);
            if !related {
                edges.entry(target).or_default().insert(path.join("::"));
            }
        }
    }
    graph
}

/// Every path in a file that starts at `crate`, `super` or `self`, `use` trees expanded.
#[derive(Default)]
struct Paths {
    found: Vec<Vec<String>>,
}

impl Paths {
    fn use_tree(&mut self, prefix: &[String], tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                let mut next = prefix.to_vec();
                next.push(path.ident.to_string());
                self.use_tree(&next, &path.tree);
            }
            syn::UseTree::Name(name) => self.push_path(prefix, &name.ident.to_string()),
            syn::UseTree::Rename(rename) => self.push_path(prefix, &rename.ident.to_string()),
            syn::UseTree::Glob(_) => self.push_path(prefix, "*"),
            syn::UseTree::Group(group) => {
                for item in &group.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    fn push_path(&mut self, prefix: &[String], last: &str) {
        let mut path = prefix.to_vec();
        if last != "self" {
            path.push(last.to_string());
        }
        self.push(path);
    }

    fn push(&mut self, path: Vec<String>) {
        if path
            .first()
            .is_some_and(|s| s == "crate" || s == "super" || s == "self")
        {
            self.found.push(path);
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&[], &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }

    // Items inside `#[cfg(test)] mod tests` are the file's own tests, not its imports.
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let is_test = item.attrs.iter().any(|attr| {
            attr.path().is_ident("cfg")
                && attr
                    .parse_args::<syn::Ident>()
                    .is_ok_and(|ident| ident == "test")
        });
        if !is_test {
            syn::visit::visit_item_mod(self, item);
        }
    }
}

/// `path` from the crate root, as written in `module`.
fn absolute(module: &Module, path: &[String]) -> Option<Module> {
    // `self` and `super` count from the module the file is; a `mod.rs` or `lib.rs` is the
    // folder's module itself.
    let mut base = module.clone();
    let mut rest = path.iter().peekable();
    match rest.peek().map(|s| s.as_str()) {
        Some("crate") => {
            base.clear();
            rest.next();
        }
        Some("self") => {
            rest.next();
        }
        Some("super") => {
            while rest.peek().is_some_and(|s| *s == "super") {
                base.pop()?;
                rest.next();
            }
        }
        _ => return None,
    }
    base.extend(rest.cloned());
    Some(base)
}

/// The deepest file the path runs through (`fetch::driver::Shared` -> `fetch::driver`).
fn longest_module(modules: &BTreeMap<Module, PathBuf>, path: &[String]) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|candidate| modules.contains_key(candidate))
}

/// The loops of the graph: each strongly connected set of two or more files, sorted.
fn circles(graph: &Graph) -> Vec<Vec<Module>> {
    // Tarjan's algorithm (recursive: a few hundred files are far from the stack's limit).
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn connect<'a>(state: &mut State<'a>, node: &'a Module) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        state.on_stack.insert(node);
        let graph = state.graph;
        for target in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if !graph.contains_key(target) {
                continue;
            }
            if !state.index.contains_key(target) {
                connect(state, target);
                let low = state.low[target].min(state.low[node]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.index[target].min(state.low[node]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.clone());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node) {
            connect(&mut state, node);
        }
    }
    state.found.sort();
    state.found
}

fn describe(circles: &[Vec<Module>], graph: &Graph) -> String {
    let name = |m: &Module| {
        if m.is_empty() {
            "lib".to_string()
        } else {
            m.join("::")
        }
    };
    let mut text = String::new();
    for circle in circles {
        text.push_str("- circle:\n");
        for from in circle {
            for (to, names) in &graph[from] {
                if circle.contains(to) {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    text.push_str(&format!(
                        "    {} -> {} ({})\n",
                        name(from),
                        name(to),
                        names.join(", ")
                    ));
                }
            }
        }
    }
    text
}
