mod prom {
    prom_runtime::include_specs!("no-such-specs");
}

fn main() {}
