%% disterl.erl: the Erlang distribution baseline of bench/run.py, between
%% two nodes on this host (erl -name ...@127.0.0.1), one process each side:
%%   -run disterl sink WARM_S WINDOW_S     register `sink`, count messages the
%%                                         way pt_msgs/raw_stream do, print
%%                                         "msgs N secs S", halt
%%   -run disterl source NODE SIZE SECS    send SIZE-byte binaries to
%%                                         {sink, NODE} as fast as possible
%%   -run disterl pong                     register `pong`, answer {From, Bin}
%%   -run disterl ping NODE SIZE SECS      send/receive round trips, print
%%                                         "rtt N P50_US P99_US", halt
%% sink and pong print "ready" once registered.
-module(disterl).
-export([sink/1, source/1, pong/0, ping/1]).

now_s() -> erlang:monotonic_time(nanosecond) / 1.0e9.

num(S) ->
    case string:to_float(S) of
        {F, ""} -> F;
        _ -> float(list_to_integer(S))
    end.

connect(Node) ->
    N = list_to_atom(Node),
    true = net_kernel:connect_node(N),
    N.

sink([W, L]) ->
    register(sink, self()),
    io:format("ready~n"),
    receive _ -> ok end,
    warm(now_s() + num(W), num(L)).

warm(Until, Len) ->
    receive _ -> ok end,
    T = now_s(),
    case T >= Until of
        true -> count(T, T + Len, 0);
        false -> warm(Until, Len)
    end.

%% The clock is read every 64th message, as in the C receivers.
count(Start, End, N) ->
    receive _ -> ok end,
    N1 = N + 1,
    case N1 rem 64 of
        0 ->
            T = now_s(),
            case T >= End of
                true ->
                    io:format("msgs ~p secs ~.6f~n", [N1, T - Start]),
                    halt();
                false ->
                    count(Start, End, N1)
            end;
        _ ->
            count(Start, End, N1)
    end.

source([Node, Size, Secs]) ->
    N = connect(Node),
    Bin = binary:copy(<<"x">>, list_to_integer(Size)),
    send_loop({sink, N}, Bin, now_s() + num(Secs), 0).

send_loop(Dst, Bin, End, I) ->
    Dst ! Bin,
    case I rem 64 =:= 0 andalso now_s() >= End of
        true -> halt();
        false -> send_loop(Dst, Bin, End, I + 1)
    end.

pong() ->
    register(pong, self()),
    io:format("ready~n"),
    pong_loop().

pong_loop() ->
    receive
        {From, Bin} ->
            From ! {pong, Bin},
            pong_loop()
    end.

ping([Node, Size, Secs]) ->
    N = connect(Node),
    Bin = binary:copy(<<"p">>, list_to_integer(Size)),
    Warm = now_s() + 0.3,
    ping_loop({pong, N}, Bin, Warm, Warm + num(Secs), []).

ping_loop(Dst, Bin, Warm, End, Acc) ->
    T = now_s(),
    case T >= End of
        true ->
            S = lists:sort(Acc),
            L = length(S),
            io:format("rtt ~p ~.1f ~.1f~n",
                      [L, lists:nth(L div 2 + 1, S) * 1.0e6,
                       lists:nth(L * 99 div 100 + 1, S) * 1.0e6]),
            halt();
        false ->
            Dst ! {self(), Bin},
            receive {pong, _} -> ok end,
            T2 = now_s(),
            Acc2 = case T >= Warm of
                       true -> [T2 - T | Acc];
                       false -> Acc
                   end,
            ping_loop(Dst, Bin, Warm, End, Acc2)
    end.
