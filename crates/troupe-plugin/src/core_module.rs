//! Core modules of the tool-plugin world, run as core modules: WASI preview 1 comes from
//! wasmtime-wasi's own host implementation, and the `host` interface is lowered here by hand,
//! through the canonical ABI of the world's few shapes (strings, and results and options of
//! strings).
//!
//! Why not make them components with the WASI preview-1 adapter: the adapter lives in the
//! module's own memory and, on the module's first WASI call, allocates its state through the
//! module's `cabi_realloc` (or by growing the memory). A runtime that makes WASI calls while it
//! initializes, before its allocator can run, traps there (Go: `_initialize` reads the clock and
//! random bytes first), and one that owns its memory's growth (Go's `sbrk` ignores what
//! `memory.grow` returns) cannot share the memory with an adapter that grows it. Run directly,
//! the host writes WASI results into the module's memory itself, and nothing but the module
//! allocates there. It also saves the adapter's instances on every call.
//!
//! The contract is the component one: `describe: func() -> string` and
//! `invoke: func(tool: string, args: string) -> result<string, string>` as
//! `describe() -> i32` and `invoke(i32, i32, i32, i32) -> i32` returning a pointer to the
//! result, `cabi_realloc` for what the host passes in, `memory`, and `_initialize` when the
//! module has one (called once per instance, before anything else).

use wasmtime::{
    AsContext, AsContextMut, Caller, Extern, ExternType, InstancePre, Linker, Memory, Module,
    Store, TypedFunc,
};

use crate::host::troupe::plugin::host::{Host, Level};
use crate::sandbox::State;

/// The module name of the host interface's functions, as a core module imports them.
pub(crate) const HOST: &str = "troupe:plugin/host@0.1.0";

type Realloc = TypedFunc<(i32, i32, i32, i32), i32>;

/// What a core module must export, with its core signature (every parameter and result is
/// `i32`): name, parameters, results.
const EXPORTS: [(&str, usize, usize); 3] =
    [("describe", 0, 1), ("invoke", 4, 1), ("cabi_realloc", 4, 1)];

/// Checks the module's exports against the world before anything of it runs; the error says
/// what is missing or mistyped.
pub(crate) fn check_exports(module: &Module) -> Result<(), String> {
    for (name, params, results) in EXPORTS {
        match module.get_export(name) {
            Some(ExternType::Func(f))
                if f.params().len() == params
                    && f.results().len() == results
                    && f.params().chain(f.results()).all(|t| t.is_i32()) => {}
            Some(other) => {
                return Err(format!(
                    "its export `{name}` is {}, not a function of {params} i32 parameter(s) returning an i32",
                    describe_extern(&other)
                ));
            }
            None => return Err(format!("it does not export `{name}`")),
        }
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => {}
        _ => return Err("it does not export its `memory`".into()),
    }
    if let Some(init) = module.get_export("_initialize")
        && !matches!(&init, ExternType::Func(f) if f.params().len() == 0 && f.results().len() == 0)
    {
        return Err("its `_initialize` is not a function without parameters or results".into());
    }
    Ok(())
}

fn describe_extern(e: &ExternType) -> String {
    match e {
        ExternType::Func(f) => format!("a function {f}"),
        ExternType::Global(_) => "a global".into(),
        ExternType::Table(_) => "a table".into(),
        ExternType::Memory(_) => "a memory".into(),
        ExternType::Tag(_) => "a tag".into(),
    }
}

/// WASI preview 1 and the host interface, for core modules.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_async(linker, State::p1)?;
    linker.func_wrap(
        HOST,
        "log",
        |mut caller: Caller<'_, State>, level: i32, ptr: i32, len: i32| {
            let level = match level {
                0 => Level::Debug,
                1 => Level::Info,
                2 => Level::Warn,
                3 => Level::Error,
                other => wasmtime::bail!("`log` was given level {other}; levels are 0 to 3"),
            };
            let message = read_string(&mut caller, ptr, len)?;
            caller.data_mut().log(level, message)
        },
    )?;
    linker.func_wrap_async(
        HOST,
        "list-documents",
        |mut caller: Caller<'_, State>, (ret,): (i32,)| {
            Box::new(async move {
                let out = caller.data_mut().list_documents()?;
                write_result(&mut caller, ret, out).await
            })
        },
    )?;
    linker.func_wrap_async(
        HOST,
        "read-document",
        |mut caller: Caller<'_, State>, (ptr, len, ret): (i32, i32, i32)| {
            Box::new(async move {
                let id = read_string(&mut caller, ptr, len)?;
                let out = caller.data_mut().read_document(id)?;
                write_result(&mut caller, ret, out).await
            })
        },
    )?;
    linker.func_wrap_async(
        HOST,
        "search-documents",
        |mut caller: Caller<'_, State>, (ptr, len, limit, ret): (i32, i32, i32, i32)| {
            Box::new(async move {
                let query = read_string(&mut caller, ptr, len)?;
                let out = caller.data_mut().search_documents(query, limit as u32)?;
                write_result(&mut caller, ret, out).await
            })
        },
    )?;
    linker.func_wrap_async(
        HOST,
        "kv-get",
        |mut caller: Caller<'_, State>, (ptr, len, ret): (i32, i32, i32)| {
            Box::new(async move {
                let key = read_string(&mut caller, ptr, len)?;
                // result<option<string>, string>: case at 0; the option's case at 4, its
                // string at 8; the error's string at 4.
                match caller.data_mut().kv_get(key)? {
                    Ok(None) => write_bytes(&mut caller, ret, &[0, 0, 0, 0, 0]),
                    Ok(Some(value)) => {
                        let (p, l) = alloc_string(&mut caller, &value).await?;
                        write_bytes(&mut caller, ret, &[0, 0, 0, 0, 1])?;
                        write_pair(&mut caller, offset(ret, 8)?, p, l)
                    }
                    Err(e) => write_case_string(&mut caller, ret, 1, &e).await,
                }
            })
        },
    )?;
    linker.func_wrap_async(
        HOST,
        "kv-set",
        |mut caller: Caller<'_, State>, (kp, kl, vp, vl, ret): (i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let key = read_string(&mut caller, kp, kl)?;
                let value = read_string(&mut caller, vp, vl)?;
                match caller.data_mut().kv_set(key, value)? {
                    Ok(()) => write_bytes(&mut caller, ret, &[0]),
                    Err(e) => write_case_string(&mut caller, ret, 1, &e).await,
                }
            })
        },
    )?;
    linker.func_wrap_async(
        HOST,
        "config",
        |mut caller: Caller<'_, State>, (ptr, len, ret): (i32, i32, i32)| {
            Box::new(async move {
                let key = read_string(&mut caller, ptr, len)?;
                match caller.data_mut().config(key)? {
                    None => write_bytes(&mut caller, ret, &[0]),
                    Some(value) => write_case_string(&mut caller, ret, 1, &value).await,
                }
            })
        },
    )?;
    linker.func_wrap_async(
        HOST,
        "http-get",
        |mut caller: Caller<'_, State>, (ptr, len, ret): (i32, i32, i32)| {
            Box::new(async move {
                let url = read_string(&mut caller, ptr, len)?;
                let out = caller.data_mut().http_get(url).await?;
                write_result(&mut caller, ret, out).await
            })
        },
    )?;
    Ok(())
}

/// Instantiates the module (running `_initialize` when it has one), then `describe`s it or
/// `invoke`s `tool` with `args`.
pub(crate) async fn run(
    pre: &InstancePre<State>,
    store: &mut Store<State>,
    call: Option<(&str, &str)>,
) -> wasmtime::Result<Result<String, String>> {
    let instance = pre.instantiate_async(&mut *store).await?;
    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        init.call_async(&mut *store, ()).await?;
    }
    let Some(memory) = instance.get_memory(&mut *store, "memory") else {
        wasmtime::bail!("the plugin exports no `memory`");
    };
    match call {
        None => {
            let describe = instance.get_typed_func::<(), i32>(&mut *store, "describe")?;
            let ret = describe.call_async(&mut *store, ()).await?;
            let (ptr, len) = read_pair(&*store, memory, ret)?;
            Ok(Ok(read_at(&*store, memory, ptr, len)?))
        }
        Some((tool, args)) => {
            let realloc: Realloc = instance.get_typed_func(&mut *store, "cabi_realloc")?;
            let (tp, tl) = alloc_in(&mut *store, memory, &realloc, tool).await?;
            let (ap, al) = alloc_in(&mut *store, memory, &realloc, args).await?;
            let invoke =
                instance.get_typed_func::<(i32, i32, i32, i32), i32>(&mut *store, "invoke")?;
            let ret = invoke.call_async(&mut *store, (tp, tl, ap, al)).await?;
            let case = read_u8(&*store, memory, ret)?;
            let (ptr, len) = read_pair(&*store, memory, offset(ret, 4)?)?;
            let text = read_at(&*store, memory, ptr, len)?;
            match case {
                0 => Ok(Ok(text)),
                1 => Ok(Err(text)),
                other => {
                    wasmtime::bail!("`invoke` returned case {other} for its result (0 ok, 1 error)")
                }
            }
        }
    }
}

/// `at + by` as a 32-bit address; past 4 GiB it is outside any memory.
fn offset(at: i32, by: u32) -> wasmtime::Result<i32> {
    match (at as u32).checked_add(by) {
        Some(a) => Ok(a as i32),
        None => wasmtime::bail!(
            "the plugin's return area ({}) is outside its memory",
            at as u32
        ),
    }
}

fn caller_memory(caller: &mut Caller<'_, State>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("the plugin exports no `memory`"),
    }
}

fn caller_realloc(caller: &mut Caller<'_, State>) -> wasmtime::Result<Realloc> {
    match caller.get_export("cabi_realloc") {
        Some(Extern::Func(f)) => f.typed(&*caller),
        _ => wasmtime::bail!("the plugin exports no `cabi_realloc`"),
    }
}

/// `len` bytes at `ptr` of the module's memory, which must be there and be UTF-8.
fn read_at(store: impl AsContext, memory: Memory, ptr: i32, len: i32) -> wasmtime::Result<String> {
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let bytes = start
        .checked_add(len)
        .and_then(|end| memory.data(&store).get(start..end));
    let Some(bytes) = bytes else {
        wasmtime::bail!(
            "a string the plugin passed ({len} bytes at {start}) is outside its memory"
        );
    };
    String::from_utf8(bytes.to_vec())
        .map_err(|e| wasmtime::format_err!("a string the plugin passed is not UTF-8: {e}"))
}

fn read_string(caller: &mut Caller<'_, State>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    let memory = caller_memory(caller)?;
    read_at(&*caller, memory, ptr, len)
}

fn read_u8(store: impl AsContext, memory: Memory, at: i32) -> wasmtime::Result<u8> {
    let mut b = [0u8; 1];
    memory
        .read(&store, at as u32 as usize, &mut b)
        .map_err(|_| {
            wasmtime::format_err!("the plugin's return area ({at}) is outside its memory")
        })?;
    Ok(b[0])
}

/// The (pointer, length) pair at `at`, which must be 4-aligned.
fn read_pair(store: impl AsContext, memory: Memory, at: i32) -> wasmtime::Result<(i32, i32)> {
    if !(at as u32).is_multiple_of(4) {
        wasmtime::bail!("the plugin's return area ({at}) is not 4-byte aligned");
    }
    let mut b = [0u8; 8];
    memory
        .read(&store, at as u32 as usize, &mut b)
        .map_err(|_| {
            wasmtime::format_err!("the plugin's return area ({at}) is outside its memory")
        })?;
    let [a0, a1, a2, a3, b0, b1, b2, b3] = b;
    Ok((
        i32::from_le_bytes([a0, a1, a2, a3]),
        i32::from_le_bytes([b0, b1, b2, b3]),
    ))
}

/// Copies `text` into memory the module allocates with its `cabi_realloc`.
async fn alloc_in(
    mut store: impl AsContextMut<Data = State>,
    memory: Memory,
    realloc: &Realloc,
    text: &str,
) -> wasmtime::Result<(i32, i32)> {
    let Ok(len) = i32::try_from(text.len()) else {
        wasmtime::bail!("a string of {} bytes is too long to pass", text.len());
    };
    let ptr = realloc.call_async(&mut store, (0, 0, 1, len)).await?;
    memory
        .write(&mut store, ptr as u32 as usize, text.as_bytes())
        .map_err(|_| {
            wasmtime::format_err!(
                "`cabi_realloc` returned {ptr} for {len} bytes, outside the memory"
            )
        })?;
    Ok((ptr, len))
}

async fn alloc_string(caller: &mut Caller<'_, State>, text: &str) -> wasmtime::Result<(i32, i32)> {
    let memory = caller_memory(caller)?;
    let realloc = caller_realloc(caller)?;
    alloc_in(&mut *caller, memory, &realloc, text).await
}

/// Writes `bytes` at the return area `ret`, which must be 4-aligned and in the memory.
fn write_bytes(caller: &mut Caller<'_, State>, ret: i32, bytes: &[u8]) -> wasmtime::Result<()> {
    if !(ret as u32).is_multiple_of(4) {
        wasmtime::bail!("the return area the plugin passed ({ret}) is not 4-byte aligned");
    }
    let memory = caller_memory(caller)?;
    memory
        .write(&mut *caller, ret as u32 as usize, bytes)
        .map_err(|_| {
            wasmtime::format_err!("the return area the plugin passed ({ret}) is outside its memory")
        })
}

fn write_pair(caller: &mut Caller<'_, State>, at: i32, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&ptr.to_le_bytes());
    b[4..].copy_from_slice(&len.to_le_bytes());
    write_bytes(caller, at, &b)
}

/// A case byte at `ret` and a string at `ret + 4`: `result<string, string>`'s either case,
/// `result<_, string>`'s error, `option<string>`'s `some`.
async fn write_case_string(
    caller: &mut Caller<'_, State>,
    ret: i32,
    case: u8,
    text: &str,
) -> wasmtime::Result<()> {
    let (p, l) = alloc_string(caller, text).await?;
    write_bytes(caller, ret, &[case])?;
    write_pair(caller, offset(ret, 4)?, p, l)
}

async fn write_result(
    caller: &mut Caller<'_, State>,
    ret: i32,
    out: Result<String, String>,
) -> wasmtime::Result<()> {
    match out {
        Ok(text) => write_case_string(caller, ret, 0, &text).await,
        Err(e) => write_case_string(caller, ret, 1, &e).await,
    }
}
