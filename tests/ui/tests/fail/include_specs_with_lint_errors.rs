mod prom {
    prom_runtime::include_specs!("bad-specs");
}

fn main() {}
