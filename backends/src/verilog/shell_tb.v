// Testbench of a nicc shell: drives AXI4-Stream beats and AXI4-Lite transactions read from a
// stimulus file and records what leaves the shell. This file is written by hand, not generated:
// the same text runs under Verilator (with a C++ main that toggles `clk`) and under Icarus
// Verilog (with the clock of `nicc_shell_tb_clock`), so that the two simulators can be compared
// beat for beat and cycle for cycle. The shell's module name and bus width come in as the macros
// NICC_SHELL and NICC_DATA_WIDTH; the files as the plusargs +stimulus=PATH and +results=PATH.
//
// Stimulus, one command per line, executed in order (numbers in hex unless marked decimal):
//   s SEED THRESHOLD    m_axis_tready is high in a cycle when the low byte of a 32-bit LFSR
//                       seeded with SEED is below THRESHOLD (decimal, 0..256; 256 = always)
//   g N                 wait N cycles (decimal)
//   b GAP SIZE SRC LAST DATA
//                       offer one beat GAP cycles (decimal) after the previous command ended
//                       and wait until it is taken; tkeep is all ones, as OpenNIC allows
//   w ADDR DATA         AXI4-Lite write; waits for the response
//   r ADDR              AXI4-Lite read; records `r ADDR DATA`
//   p ADDR VALUE        AXI4-Lite reads of ADDR until it reads VALUE
//   e                   wait until no beat is on m_axis, record `cycles N`, finish
// Results: `a CYCLE` for every beat taken at the input, `o CYCLE SRC DST SIZE LAST KEEP DATA` for
// every beat taken at the output (CYCLE and LAST decimal), `r ADDR DATA`, `cycles N`.
//
// Inputs change and outputs are sampled at the falling edge; every ready of the shell is a
// register, so a handshake is known at the falling edge before the rising edge that takes it.
`ifndef NICC_DATA_WIDTH
`define NICC_DATA_WIDTH 512
`endif

module nicc_shell_tb (
  input wire clk
);
  localparam DATA_WIDTH = `NICC_DATA_WIDTH;
  localparam BEAT_BYTES = DATA_WIDTH / 8;
  localparam LIMIT = 4000000;
  localparam IDLE = 0, GAP = 1, BEAT = 2, WRITE = 3, READ = 4, WAIT = 5, DONE = 6;

  reg rst;
  reg s_tvalid;
  reg [DATA_WIDTH-1:0] s_tdata;
  reg s_tlast;
  reg [15:0] s_size;
  reg [15:0] s_src;
  wire s_tready;
  wire m_tvalid;
  wire [DATA_WIDTH-1:0] m_tdata;
  wire [BEAT_BYTES-1:0] m_tkeep;
  wire m_tlast;
  wire [15:0] m_size;
  wire [15:0] m_src;
  wire [15:0] m_dst;
  reg m_tready;
  reg awvalid;
  reg [31:0] awaddr;
  wire awready;
  reg wvalid;
  reg [31:0] wdata;
  wire wready;
  wire bvalid;
  wire [1:0] bresp;
  reg arvalid;
  reg [31:0] araddr;
  wire arready;
  wire rvalid;
  wire [31:0] rdata;
  wire [1:0] rresp;

  `NICC_SHELL #(
    .DATA_WIDTH(DATA_WIDTH)
  ) dut (
    .clk(clk),
    .rst(rst),
    .s_axis_tvalid(s_tvalid),
    .s_axis_tdata(s_tdata),
    .s_axis_tkeep({BEAT_BYTES{1'b1}}),
    .s_axis_tlast(s_tlast),
    .s_axis_tuser_size(s_size),
    .s_axis_tuser_src(s_src),
    .s_axis_tuser_dst(16'h0),
    .s_axis_tready(s_tready),
    .m_axis_tvalid(m_tvalid),
    .m_axis_tdata(m_tdata),
    .m_axis_tkeep(m_tkeep),
    .m_axis_tlast(m_tlast),
    .m_axis_tuser_size(m_size),
    .m_axis_tuser_src(m_src),
    .m_axis_tuser_dst(m_dst),
    .m_axis_tready(m_tready),
    .s_axil_awvalid(awvalid),
    .s_axil_awaddr(awaddr),
    .s_axil_awready(awready),
    .s_axil_wvalid(wvalid),
    .s_axil_wdata(wdata),
    .s_axil_wready(wready),
    .s_axil_bvalid(bvalid),
    .s_axil_bresp(bresp),
    .s_axil_bready(1'b1),
    .s_axil_arvalid(arvalid),
    .s_axil_araddr(araddr),
    .s_axil_arready(arready),
    .s_axil_rvalid(rvalid),
    .s_axil_rdata(rdata),
    .s_axil_rresp(rresp),
    .s_axil_rready(1'b1)
  );

  // Public, so that Verilator 5.006 keeps them as state: it turned the descriptors into locals
  // of the falling-edge block (losing them between edges) when nothing else read them.
  integer fin /*verilator public*/;
  integer fout /*verilator public*/;
  integer r, cycle, state, gap;
  reg [63:0] cmd;
  reg [31:0] lfsr;
  reg [31:0] threshold;
  reg [31:0] a_addr;
  reg [31:0] p_value;
  reg poll, aw_done, w_done, s_fire, aw_fire, w_fire, ar_fire;
  reg [8*512-1:0] stimulus_path;
  reg [8*512-1:0] results_path;
  reg opened;

  initial begin
    rst = 1;
    s_tvalid = 0; s_tdata = 0; s_tlast = 0; s_size = 0; s_src = 0;
    m_tready = 0;
    awvalid = 0; awaddr = 0; wvalid = 0; wdata = 0; arvalid = 0; araddr = 0;
    cycle = 0; state = IDLE; gap = 0; lfsr = 32'h1; threshold = 256; poll = 0;
    aw_done = 0; w_done = 0; s_fire = 0; aw_fire = 0; w_fire = 0; ar_fire = 0;
    a_addr = 0; p_value = 0; cmd = 0; opened = 0; fin = 0; fout = 0;
  end

  always @(posedge clk) cycle <= cycle + 1;

  always @(negedge clk) begin
    // Nothing happens before the fourth rising edge: reset, and no falling edge at time zero
    // (Icarus sees one when the clock leaves x) may count.
    if (cycle >= 4) begin
      rst = 0;
      if (!opened) begin
        if (!$value$plusargs("stimulus=%s", stimulus_path)) stimulus_path = "stimulus.txt";
        if (!$value$plusargs("results=%s", results_path)) results_path = "results.txt";
        fin = $fopen(stimulus_path, "r");
        fout = $fopen(results_path, "w");
        opened = 1;
      end
      if (cycle >= LIMIT) begin
        $fwrite(fout, "timeout %0d\n", cycle);
        $fclose(fout);
        $finish;
      end
      // The handshakes decided at the previous falling edge happened at the rising edge since.
      if (s_fire) begin s_tvalid = 0; state = IDLE; end
      if (aw_fire) begin awvalid = 0; aw_done = 1; end
      if (w_fire) begin wvalid = 0; w_done = 1; end
      if (ar_fire) arvalid = 0;
      // Responses: bready and rready are always high, so a valid seen now is taken next edge.
      if (state == WRITE && aw_done && w_done && bvalid) state = IDLE;
      if (state == READ && rvalid) begin
        if (poll && rdata != p_value) begin
          arvalid = 1;
        end else begin
          if (!poll) $fwrite(fout, "r %h %h\n", a_addr, rdata);
          state = IDLE;
        end
      end
      if (state == GAP) begin
        if (gap == 0) begin state = BEAT; s_tvalid = 1; end else gap = gap - 1;
      end
      if (state == WAIT) begin
        if (gap == 0) state = IDLE; else gap = gap - 1;
      end
      if (state == DONE && !m_tvalid) begin
        $fwrite(fout, "cycles %0d\n", cycle);
        $fclose(fout);
        $finish;
      end
      if (state == IDLE) begin
        r = $fscanf(fin, "%s", cmd);
        if (r != 1) begin
          state = DONE;
        end else if (cmd == "b") begin
          r = $fscanf(fin, "%d %h %h %d %h", gap, s_size, s_src, s_tlast, s_tdata);
          if (gap == 0) begin state = BEAT; s_tvalid = 1; end else begin state = GAP; gap = gap - 1; end
        end else if (cmd == "w") begin
          r = $fscanf(fin, "%h %h", awaddr, wdata);
          awvalid = 1; wvalid = 1; aw_done = 0; w_done = 0; state = WRITE;
        end else if (cmd == "r") begin
          r = $fscanf(fin, "%h", araddr);
          a_addr = araddr; arvalid = 1; poll = 0; state = READ;
        end else if (cmd == "p") begin
          r = $fscanf(fin, "%h %h", araddr, p_value);
          a_addr = araddr; arvalid = 1; poll = 1; state = READ;
        end else if (cmd == "g") begin
          r = $fscanf(fin, "%d", gap);
          state = WAIT;
        end else if (cmd == "s") begin
          r = $fscanf(fin, "%h %d", lfsr, threshold);
        end else begin
          state = DONE;
        end
      end
      // Egress: a new pseudo-random ready; the beat the next rising edge takes is recorded now.
      lfsr = {lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]};
      m_tready = ({24'h0, lfsr[7:0]} < threshold);
      if (m_tvalid && m_tready)
        $fwrite(fout, "o %0d %h %h %h %0d %h %h\n", cycle, m_src, m_dst, m_size, m_tlast, m_tkeep, m_tdata);
      s_fire = s_tvalid && s_tready;
      if (s_fire) $fwrite(fout, "a %0d\n", cycle);
      aw_fire = awvalid && awready;
      w_fire = wvalid && wready;
      ar_fire = arvalid && arready;
    end
  end
endmodule

`ifndef VERILATOR
// Icarus Verilog's top level: a 10-unit clock around the testbench.
module nicc_shell_tb_clock;
  reg clk;
  initial clk = 0;
  always #5 clk = ~clk;
  nicc_shell_tb tb (
    .clk(clk)
  );
endmodule
`endif
