mod prom {
    prom_runtime::include_specs!("specs");
}

fn main() {
    let _ = prom_runtime::topic!("Order-Placed");
}
