//! Facts about the running kernel, read before anything is loaded: its BTF
//! (layouts, tracepoint prototypes, enum values), its symbols, and whether
//! this process may trace it.
pub mod btf;
pub mod facts;
pub mod kallsyms;
pub mod privileges;
pub mod startup;
