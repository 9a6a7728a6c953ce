#include "serve/jinja_eval.h"

#include <memory>
#include <unordered_set>

#include "serve/jinja_builtins.h"

namespace brisk::jinja {
namespace {

using Frame = std::shared_ptr<ValueDict>;
using Clock = std::chrono::steady_clock;

// The clock is read once per this many steps (a read costs about as much as a step); one step
// does bounded work, so the render stops soon after its time is up.
constexpr int64_t kStepsPerClockRead = 16;
using Frames = std::vector<Frame>;

enum class Flow { kNormal, kBreak, kContinue };

// Fills in the line of an error raised below `line` that does not know its own yet.
template <class F>
auto at_line(int line, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (TemplateError& e) {
    if (e.line == 0) e.line = line;
    throw;
  }
}

class Evaluator {
 public:
  Evaluator(const ValueDict& globals, const RenderLimits& limits)
      : limits_(limits), deadline_(Clock::now() + limits.max_time) {
    frames_.push_back(std::make_shared<ValueDict>(globals));
    frames_.push_back(std::make_shared<ValueDict>());  // the template's own top-level variables
  }

  // A macro's closure holds the frames it was defined in, and one of them holds the macro: a
  // cycle of shared_ptrs that kept every render's frames (the request's messages among them)
  // alive forever. Emptying the captured frames when the render ends breaks each such cycle.
  ~Evaluator() {
    for (const Frame& frame : macro_frames_) frame->items.clear();
  }
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  std::string run(const NodeList& nodes) {
    std::string out;
    exec_all(nodes, out);
    return out;
  }

 private:
  void step() {
    if (++steps_ > limits_.max_steps)
      throw TemplateError("template exceeded its step budget (endless loop?)");
    if (steps_ % kStepsPerClockRead == 0 && Clock::now() > deadline_)
      throw TemplateError("template exceeded its time limit of " + std::to_string(limits_.max_time.count()) + " ms");
  }

  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      if (const Value* v = (*it)->find(name)) return *v;
    }
    return Value::undefined("'" + name + "' is undefined");
  }

  // ---- statements ----
  Flow exec_all(const NodeList& nodes, std::string& out) {
    for (const auto& node : nodes) {
      const Flow flow = at_line(node->line, [&] { return exec(*node, out); });
      if (flow != Flow::kNormal) return flow;
      if (out.size() > limits_.max_output_bytes)
        throw TemplateError("template output exceeds its size limit", node->line);
    }
    return Flow::kNormal;
  }

  Flow exec(const Node& node, std::string& out) {
    step();
    switch (node.kind) {
      case Node::Kind::kText:
        out += node.text;
        return Flow::kNormal;
      case Node::Kind::kOutput:
        out += eval(*node.expr).to_string();
        return Flow::kNormal;
      case Node::Kind::kIf:
        for (const auto& [condition, body] : node.branches) {
          if (eval(*condition).truthy()) return exec_all(body, out);
        }
        return exec_all(node.else_body, out);
      case Node::Kind::kFor:
        exec_for(node, out);
        return Flow::kNormal;
      case Node::Kind::kSet:
        exec_set(node, eval(*node.expr));
        return Flow::kNormal;
      case Node::Kind::kSetBlock: {
        std::string captured;
        exec_all(node.body, captured);
        exec_set(node, Value(std::move(captured)));
        return Flow::kNormal;
      }
      case Node::Kind::kMacro:
        define_macro(node);
        return Flow::kNormal;
      case Node::Kind::kBreak:
        return Flow::kBreak;
      case Node::Kind::kContinue:
        return Flow::kContinue;
      case Node::Kind::kScope:
        return exec_all(node.body, out);
      case Node::Kind::kFilterBlock: {
        std::string captured;
        const Flow flow = exec_all(node.body, captured);
        out += apply_filter_chain(*node.expr, Value(std::move(captured))).to_string();
        return flow;
      }
    }
    return Flow::kNormal;
  }

  // A {% filter %} block's chain applied to its rendered body (the chain's null innermost input).
  Value apply_filter_chain(const Expr& filter, Value body) {
    Value input = filter.children[0] ? apply_filter_chain(*filter.children[0], std::move(body)) : std::move(body);
    return apply_filter(filter.name, input, eval_args(filter, 1));
  }

  static void bind_targets(ValueDict& frame, const std::vector<std::string>& targets, const Value& value) {
    if (targets.size() == 1) {
      frame.set(targets[0], value);
      return;
    }
    const ValueList items = value.iterate();
    if (items.size() != targets.size()) {
      throw TemplateError("cannot unpack " + std::to_string(items.size()) + " values into " +
                          std::to_string(targets.size()) + " names");
    }
    for (size_t i = 0; i < targets.size(); ++i) frame.set(targets[i], items[i]);
  }

  void exec_set(const Node& node, const Value& value) {
    if (!node.attribute.empty()) {
      Value target = lookup(node.targets[0]);
      if (target.kind() != Value::Kind::kNamespace) {
        throw TemplateError("cannot assign attribute '" + node.attribute + "' on '" + node.targets[0] +
                            "': only namespace() objects take attribute assignment");
      }
      target.mutable_dict().set(node.attribute, value);
      return;
    }
    bind_targets(*frames_.back(), node.targets, value);
  }

  // Each iteration runs in a fresh frame, as in jinja2: a `set` in the body is seen neither by
  // the next iteration nor after the loop (namespace() attributes are, being shared objects).
  void exec_for(const Node& node, std::string& out) {
    const ValueList all = eval(*node.expr).iterate();
    frames_.push_back(std::make_shared<ValueDict>());
    ValueList items;
    if (node.filter) {
      for (const Value& item : all) {
        step();
        bind_targets(*frames_.back(), node.targets, item);
        if (eval(*node.filter).truthy()) items.push_back(item);
      }
    } else {
      items = all;
    }
    const auto length = static_cast<int64_t>(items.size());
    // loop.cycle() reads the current index through a shared counter: one function per loop.
    auto index = std::make_shared<int64_t>(0);
    const Value cycle = Value::function([index](const CallArgs& args) {
      if (args.positional.empty()) throw TemplateError("loop.cycle() needs at least one argument");
      return args.positional[static_cast<size_t>(*index) % args.positional.size()];
    });
    for (int64_t i = 0; i < length; ++i) {
      step();
      *index = i;
      frames_.back() = std::make_shared<ValueDict>();
      ValueDict& frame = *frames_.back();
      bind_targets(frame, node.targets, items[static_cast<size_t>(i)]);
      frame.set("loop", loop_object(items, i, cycle));
      if (exec_all(node.body, out) == Flow::kBreak) break;
    }
    frames_.pop_back();
    if (length == 0) exec_all(node.else_body, out);
  }

  static Value loop_object(const ValueList& items, int64_t i, const Value& cycle) {
    const auto length = static_cast<int64_t>(items.size());
    ValueDict loop;
    loop.items.reserve(12);
    auto add = [&](const char* name, Value v) { loop.items.emplace_back(name, std::move(v)); };
    add("index0", Value(i));
    add("index", Value(i + 1));
    add("revindex0", Value(length - i - 1));
    add("revindex", Value(length - i));
    add("first", Value(i == 0));
    add("last", Value(i == length - 1));
    add("length", Value(length));
    add("depth", Value(int64_t{1}));
    add("depth0", Value(int64_t{0}));
    add("previtem",
        i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
    add("nextitem",
        i + 1 < length ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
    add("cycle", cycle);
    return Value(std::move(loop));
  }

  // A macro sees the frames around its definition (by reference: later top-level sets too) plus
  // its parameters; calling it renders its body to a string.
  void define_macro(const Node& node) {
    const Frames closure = frames_;
    macro_frames_.insert(closure.begin(), closure.end());
    const Node* macro = &node;
    frames_.back()->set(
        node.name, Value::function([this, closure, macro](const CallArgs& args) {
          if (args.positional.size() > macro->params.size()) {
            throw TemplateError("macro '" + macro->name + "' takes " + std::to_string(macro->params.size()) +
                                " arguments");
          }
          auto locals = std::make_shared<ValueDict>();
          for (size_t p = 0; p < macro->params.size(); ++p) {
            const auto& [name, default_value] = macro->params[p];
            if (p < args.positional.size())
              locals->set(name, args.positional[p]);
            else if (const Value* kw = args.keyword_arg(name))
              locals->set(name, *kw);
            else
              locals->set(name, default_value ? eval(*default_value)
                                              : Value::undefined("parameter '" + name + "' was not given"));
          }
          if (++call_depth_ > limits_.max_call_depth) {
            --call_depth_;
            throw TemplateError("macro calls nested too deeply (recursion?)");
          }
          Frames saved = std::move(frames_);
          frames_ = closure;
          frames_.push_back(locals);
          std::string out;
          try {
            exec_all(macro->body, out);
          } catch (...) {
            frames_ = std::move(saved);
            --call_depth_;
            throw;
          }
          frames_ = std::move(saved);
          --call_depth_;
          return Value(std::move(out));
        }));
  }

  // ---- expressions ----
  Value eval(const Expr& e) {
    return at_line(e.line, [&] { return eval_here(e); });
  }

  CallArgs eval_args(const Expr& e, size_t first_positional) {
    CallArgs args;
    for (size_t i = first_positional; i < e.children.size(); ++i)
      args.positional.push_back(eval(*e.children[i]));
    for (const auto& [name, value] : e.keywords) args.keyword.emplace_back(name, eval(*value));
    return args;
  }

  std::optional<int64_t> slice_bound(const ExprPtr& bound) {
    if (!bound) return std::nullopt;
    const Value v = eval(*bound);
    if (v.is_none()) return std::nullopt;
    return expect_int(v, "a slice index");
  }

  Value eval_here(const Expr& e) {
    step();
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.literal;
      case Expr::Kind::kName:
        return lookup(e.name);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        ValueList items;
        for (const auto& child : e.children) items.push_back(eval(*child));
        return e.kind == Expr::Kind::kTuple ? Value::tuple(std::move(items)) : Value(std::move(items));
      }
      case Expr::Kind::kDict: {
        ValueDict dict;
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          const Value key = eval(*e.children[i]);
          dict.set(expect_string(key, "a dict key"), eval(*e.children[i + 1]));
        }
        return Value(std::move(dict));
      }
      case Expr::Kind::kAttribute:
        return get_attribute(eval(*e.children[0]), e.name);
      case Expr::Kind::kSubscript:
        return get_item(eval(*e.children[0]), eval(*e.children[1]));
      case Expr::Kind::kSlice: {
        const Value sequence = eval(*e.children[0]);
        const auto start = slice_bound(e.children[1]);
        const auto stop = slice_bound(e.children[2]);
        return slice(sequence, start, stop, slice_bound(e.children[3]));
      }
      case Expr::Kind::kCall:
        return eval_call(e);
      case Expr::Kind::kFilter: {
        const Value input = eval(*e.children[0]);
        return apply_filter(e.name, input, eval_args(e, 1));
      }
      case Expr::Kind::kTest: {
        const Value input = eval(*e.children[0]);
        return Value(apply_test(e.name, input, eval_args(e, 1)) != e.negated);
      }
      case Expr::Kind::kUnary: {
        const Value operand = eval(*e.children[0]);
        if (e.name == "not") return Value(!operand.truthy());
        if (e.name == "-") return unary_minus(operand);
        if (!operand.is_number())
          throw TemplateError("bad operand type for unary +: '" + operand.type_name() + "'");
        return operand;
      }
      case Expr::Kind::kBinary: {
        Value left = eval(*e.children[0]);
        // and/or return an operand, as in Python, and skip the right side when they can.
        if (e.name == "and") return left.truthy() ? eval(*e.children[1]) : left;
        if (e.name == "or") return left.truthy() ? left : eval(*e.children[1]);
        return binary_operation(e.name, left, eval(*e.children[1]));
      }
      case Expr::Kind::kCompare:
        return Value(eval_compare(e));
      case Expr::Kind::kConditional:
        if (eval(*e.children[0]).truthy()) return eval(*e.children[1]);
        return e.children[2] ? eval(*e.children[2])
                             : Value::undefined("the conditional expression has no else");
    }
    return Value();
  }

  bool eval_compare(const Expr& e) {
    Value left = eval(*e.children[0]);
    for (size_t i = 0; i < e.ops.size(); ++i) {
      Value right = eval(*e.children[i + 1]);
      const std::string& op = e.ops[i];
      bool holds;
      if (op == "==")
        holds = values_equal(left, right);
      else if (op == "!=")
        holds = !values_equal(left, right);
      else if (op == "<")
        holds = value_less(left, right);
      else if (op == ">")
        holds = value_less(right, left);
      else if (op == "<=")
        holds = !value_less(right, left);
      else if (op == ">=")
        holds = !value_less(left, right);
      else if (op == "in")
        holds = contains(right, left);
      else
        holds = !contains(right, left);  // not in
      if (!holds) return false;
      left = std::move(right);
    }
    return true;
  }

  Value eval_call(const Expr& e) {
    const Expr& callee = *e.children[0];
    Value function;
    if (callee.kind == Expr::Kind::kAttribute) {
      const Value object = eval(*callee.children[0]);
      if (has_method(object, callee.name)) return call_method(object, callee.name, eval_args(e, 1));
      function = get_attribute(object, callee.name);
    } else {
      function = eval(callee);
    }
    if (function.kind() != Value::Kind::kFunction) {
      if (function.is_undefined()) {
        throw TemplateError(function.undefined_name().empty() ? "calling an undefined value"
                                                              : function.undefined_name());
      }
      throw TemplateError("'" + function.type_name() + "' object is not callable");
    }
    return function.as_function()(eval_args(e, 1));
  }

  const RenderLimits& limits_;
  const Clock::time_point deadline_;
  Frames frames_;
  std::unordered_set<Frame> macro_frames_;  // every frame a macro closure holds
  int64_t steps_ = 0;
  int call_depth_ = 0;
};

}  // namespace

std::string render_template(const NodeList& nodes, const ValueDict& globals, const RenderLimits& limits) {
  return Evaluator(globals, limits).run(nodes);
}

}  // namespace brisk::jinja
