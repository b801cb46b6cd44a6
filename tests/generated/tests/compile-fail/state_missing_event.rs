// The spec's `cart` aggregate has three events; this state folds two of them. Adding an event
// to an aggregate makes every state that does not handle it fail to compile, naming it.
use prom_generated_tests::constructs::{cart, cart_opened, item_added};

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Cart {
    items: u64,
}

impl cart::State for Cart {
    fn on_cart_opened(&mut self, _: &cart_opened::Latest) {}

    fn on_item_added(&mut self, _: &item_added::Latest) {
        self.items += 1;
    }
}

fn main() {}
