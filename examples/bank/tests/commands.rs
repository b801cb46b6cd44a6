//! The account's decide steps, tested with the aggregate test kit (given/when/then, no store).

use bank::prom::{account, account_opened, money_deposited, money_withdrawn};
use bank::{Balance, BankError, deposit, open, withdraw};

fn opened() -> account::Event {
    account_opened::Latest { account_id: "a".into(), owner: "ada".into() }.into()
}

fn deposited(cents: i64) -> account::Event {
    money_deposited::Latest { account_id: "a".into(), amount_cents: cents }.into()
}

fn withdrawn(cents: i64) -> account::Event {
    money_withdrawn::Latest { account_id: "a".into(), amount_cents: cents }.into()
}

#[test]
fn a_withdrawal_within_the_balance_is_withdrawn() {
    account::STREAM
        .given::<Balance>([opened(), deposited(100)])
        .when(|state| withdraw(state, "a", 60))
        .then([withdrawn(60)]);
}

#[test]
fn an_overdraft_is_refused_with_the_balance_it_saw() {
    account::STREAM
        .given::<Balance>([opened(), deposited(100), withdrawn(30)])
        .when(|state| withdraw(state, "a", 80))
        .then_error(BankError::Insufficient { account: "a".into(), balance: 70, asked: 80 });
}

#[test]
fn an_account_opens_once_and_takes_deposits_only_when_open() {
    account::STREAM.given::<Balance>([]).when(|state| open(state, "a", "ada")).then([opened()]);
    account::STREAM
        .given::<Balance>([opened()])
        .when(|state| open(state, "a", "bob"))
        .then_error(BankError::AlreadyOpen("a".into()));
    account::STREAM
        .given::<Balance>([])
        .when(|state| deposit(state, "a", 5))
        .then_error_matches(|e| matches!(e, BankError::NotOpen(_)));
    account::STREAM
        .given::<Balance>([opened(), deposited(5)])
        .when(|state| deposit(state, "a", 7))
        .then_state(|state| assert_eq!(state.cents, 12));
}

#[test]
fn a_wrong_expectation_names_the_event_that_differs() {
    let failure = std::panic::catch_unwind(|| {
        account::STREAM
            .given::<Balance>([opened(), deposited(100)])
            .when(|state| withdraw(state, "a", 60))
            .then([withdrawn(50)]);
    })
    .expect_err("the expectation is wrong");
    let message = failure.downcast_ref::<String>().expect("a formatted message");
    assert!(message.starts_with("`account` after 2 given events: event 1 of 1 differs:"), "{message}");
    assert!(message.contains("amount_cents: 50") && message.contains("amount_cents: 60"), "{message}");
}
