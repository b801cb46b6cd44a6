// The macros lint against prom.lock like every other front end: a locked version edited in
// place fails the build (P209).
mod prom {
    prom_runtime::include_specs!("locked-specs");
}

fn main() {}
