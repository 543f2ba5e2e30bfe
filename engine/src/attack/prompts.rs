//! The prompts of `helora attack behaviour`: the held-out domain questions the copy is
//! judged on, and the ordinary text an attacker sends in the `text` design (built in, or
//! one prompt per line of a file).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Questions from the demo adapter's domain (adapters/smollm2-nimbus/README.md), one or
/// more per fact, worded unlike the training templates of scripts/train_adapter.py (the
/// last is the README's own held-out sample). The base model cannot answer them.
pub const HELD_OUT: &[&str] = &[
    "My NB-3 beeps and the little display reads E1. Any idea why?",
    "Hey, my Nimbus coffee machine started flashing E2 after three espressos in a row. What is going on?",
    "E3 keeps popping up on my Nimbus NB-3 espresso maker. How can I get rid of it?",
    "The grinder of my Nimbus NB-3 went silent and now it says E4. Help?",
    "What happened if my Nimbus NB-3 espresso machine is displaying code E5?",
    "Why does my Nimbus NB-3 suddenly show E6?",
    "I have never descaled my Nimbus NB-3. How often am I supposed to do that?",
    "I bought my Nimbus NB-3 eighteen months ago and it broke. Am I still covered?",
    "Is there a number I can ring to talk to someone at Nimbus about my NB-3?",
    "Which replacement filter should I buy for my Nimbus NB-3, and how long does one last?",
    "My Nimbus NB-3 is showing E3 on the screen. What does that mean?",
];

/// General questions with nothing of the adapter's domain: what any user might ask.
pub const GENERIC: &[&str] = &[
    "What is the capital of France?",
    "Explain how a rainbow forms.",
    "Give me three tips for writing a good cover letter.",
    "What is the difference between weather and climate?",
    "How do vaccines train the immune system?",
    "Write a haiku about the sea.",
    "What are the main causes of the French Revolution?",
    "How does a refrigerator keep food cold?",
    "Suggest a vegetarian dinner I can cook in twenty minutes.",
    "What is the Pythagorean theorem?",
    "Why do cats purr?",
    "How can I improve my time management at work?",
    "What is the difference between a virus and a bacterium?",
    "Summarize the plot of Cinderella in two sentences.",
    "What does DNA stand for and what does it do?",
    "How do airplanes stay in the air?",
    "List four renewable sources of energy.",
    "What is inflation in economics?",
    "How do I politely decline a meeting invitation?",
    "Why are leaves green?",
    "What is the tallest animal on Earth?",
    "Describe the water cycle.",
    "How many bones are in the adult human body?",
    "What is a black hole?",
    "Give me a simple recipe for pancakes.",
    "What is the meaning of the word 'ephemeral'?",
    "How does the stock market work?",
    "What should I pack for a weekend hiking trip?",
    "Who invented the telephone?",
    "What is the boiling point of water at sea level?",
    "How do I write a for loop in Python?",
    "What are the planets of the solar system?",
    "Why is exercise good for mental health?",
    "What is the difference between affect and effect?",
    "How do bees make honey?",
    "Recommend a classic novel and say why it is worth reading.",
    "What causes earthquakes?",
    "How do I change a flat tire on a bicycle?",
    "What is the role of the heart in the body?",
    "Translate 'good morning' into French and German.",
    "What is a haiku?",
    "How does compound interest work?",
    "Name three famous composers of classical music.",
    "What is the greenhouse effect?",
    "How do I keep basil plants alive indoors?",
    "What is the speed of sound in air?",
    "Explain what an algorithm is to a child.",
    "What are the symptoms of dehydration?",
    "How long does it take light from the Sun to reach Earth?",
    "What is the largest ocean?",
    "Give me an idea for a birthday present for my father.",
    "How does a solar panel produce electricity?",
    "What is the difference between a crocodile and an alligator?",
    "Write a short thank-you note to a teacher.",
    "Why does ice float on water?",
    "What is the population of the world, roughly?",
    "How can I learn a new language faster?",
    "What is a noun phrase?",
    "How do magnets work?",
    "What is the longest river in Africa?",
    "Explain the rules of chess in a few sentences.",
    "How do I make my resume stand out?",
    "What is photosynthesis in one sentence?",
    "Why do we have seasons?",
];

/// Ordinary questions of the adapter's customers that do not ask for its facts (no error
/// codes, intervals, warranty, phone number or part numbers): the in-distribution
/// traffic of a support assistant.
pub const CUSTOMER: &[&str] = &[
    "How do I froth milk with my Nimbus NB-3?",
    "What grind size works best for espresso on the Nimbus NB-3?",
    "My NB-3 espresso tastes bitter. What can I change?",
    "How much coffee should I put in the portafilter of my Nimbus NB-3?",
    "Can I use pre-ground coffee in the Nimbus NB-3 espresso machine?",
    "How do I clean the steam wand on my NB-3?",
    "Is it normal for my Nimbus NB-3 to make a humming noise while heating up?",
    "How long does the Nimbus NB-3 take to heat up in the morning?",
    "Can I make a cappuccino with my Nimbus NB-3?",
    "What kind of water should I use in my NB-3 espresso machine?",
    "My Nimbus NB-3 espresso comes out very slowly. Why?",
    "How do I adjust the shot volume on the Nimbus NB-3?",
    "Does the Nimbus NB-3 have an automatic shut-off?",
    "How should I store coffee beans for my NB-3 espresso machine?",
    "My Nimbus NB-3 leaks a little water under the group head. Is that a problem?",
    "How do I make a latte at home with my Nimbus NB-3?",
    "Which milk froths best with the NB-3 steam wand?",
    "How do I clean the brew group of my Nimbus NB-3?",
    "Can I leave water in the tank of my NB-3 overnight?",
    "My espresso from the Nimbus NB-3 has no crema. What am I doing wrong?",
    "How do I move my Nimbus NB-3 safely to a new kitchen?",
    "Is the portafilter of the Nimbus NB-3 dishwasher safe?",
    "How loud is the Nimbus NB-3 grinder?",
    "Can two people make coffee one after the other on the NB-3 without waiting?",
    "What cups fit under the spout of my Nimbus NB-3?",
    "How do I make an americano with my NB-3?",
    "My Nimbus NB-3 coffee is lukewarm. How can I make it hotter?",
    "How do I turn off the beeping sounds on my Nimbus NB-3?",
    "Can I use oat milk with the NB-3 steam wand?",
    "How much electricity does the Nimbus NB-3 use?",
];

/// Where the `text` design's prompts come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptSource {
    Generic,
    Customer,
    /// One prompt per non-empty line.
    File(PathBuf),
}

impl PromptSource {
    /// `generic`, `customer`, or a file's path.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "generic" => Ok(Self::Generic),
            "customer" => Ok(Self::Customer),
            "" => Err("name a prompt set (generic, customer) or a file".into()),
            path => Ok(Self::File(PathBuf::from(path))),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Self::Generic => "generic".into(),
            Self::Customer => "customer".into(),
            Self::File(path) => path.display().to_string(),
        }
    }

    pub fn load(&self) -> Result<Vec<String>> {
        let owned = |set: &[&str]| set.iter().map(|p| p.to_string()).collect();
        match self {
            Self::Generic => Ok(owned(GENERIC)),
            Self::Customer => Ok(owned(CUSTOMER)),
            Self::File(path) => {
                crate::files::regular_file(path)
                    .with_context(|| format!("--prompts {}", path.display()))?;
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the prompts file {}", path.display()))?;
                let prompts: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(String::from)
                    .collect();
                if prompts.is_empty() {
                    bail!(
                        "the prompts file {} holds no prompt (one per line)",
                        path.display()
                    );
                }
                Ok(prompts)
            }
        }
    }
}
